"""``flamekit completions bash|zsh|fish``: each script is produced, is accepted by its
shell, and completes ``flamekit con`` to ``convert`` by calling flamekit back.

The scripts call ``flamekit`` by name, as an installed entry point is called: the tests
put a ``flamekit`` of this tree first on PATH. zsh and fish are optional here (CI has
bash only): their tests skip, saying so, when the shell is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PATH starts with a ``flamekit`` running this tree."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "flamekit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m flamekit "$@"\n')
    shim.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


def script(shell: str, env: dict[str, str]) -> str:
    r = subprocess.run(["flamekit", "completions", shell], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout


def shell_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: its completion script is not checked")
    return path


def run_shell(argv: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    return r.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_script_calls_flamekit_back(shell: str, env: dict[str, str]) -> None:
    text = script(shell, env)
    assert f"_FLAMEKIT_COMPLETE={shell}_complete" in text
    assert "_flamekit_completion" in text


def test_an_unknown_shell_is_one_line(env: dict[str, str]) -> None:
    r = subprocess.run(["flamekit", "completions", "tcsh"], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "'tcsh' is not one of 'bash', 'zsh', 'fish'" in r.stderr


BASH_COMPLETE = """
source "$1"
complete -p flamekit
reply() {  # what bash does on <TAB>: COMP_WORDS, COMP_CWORD, then the function
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
    _flamekit_completion flamekit
    echo "${COMPREPLY[*]}"
}
reply flamekit con
reply flamekit convert run.fkt --to
reply flamekit convert run.fkt --thr
"""


def test_bash_completes_commands_and_options(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "flamekit.bash").write_text(script("bash", env))
    out = run_shell(["bash", "-c", BASH_COMPLETE, "bash", str(tmp_path / "flamekit.bash")], env)
    registered, command, option, prefix = out.splitlines()
    assert registered == "complete -o nosort -F _flamekit_completion flamekit"
    assert command == "convert"
    assert option == "--to"  # an option of convert's own, not the group's
    assert sorted(prefix.split()) == ["--thread", "--threads"]


ZSH_COMPLETE = """
compdef() { :; }  # compinit's: registration is not what this checks
_describe() { print -l -- "${(@P)3}"; }  # the candidates, as zsh would offer them
compadd() { print -l -- "${(@P)5}"; }
source "$1"
words=(flamekit con); CURRENT=2
_flamekit_completion
"""


def test_zsh_accepts_the_script_and_completes(env: dict[str, str], tmp_path: Path) -> None:
    zsh = shell_or_skip("zsh")
    path = tmp_path / "_flamekit"
    path.write_text(script("zsh", env))
    run_shell([zsh, "-n", str(path)], env)  # parses
    out = run_shell([zsh, "-f", "-c", ZSH_COMPLETE, "zsh", str(path)], env)
    assert out.splitlines() == ["convert:" + "Symbolize a trace and write it as..."]


def test_fish_accepts_the_script_and_completes(env: dict[str, str], tmp_path: Path) -> None:
    fish = shell_or_skip("fish")
    path = tmp_path / "flamekit.fish"
    path.write_text(script("fish", env))
    run_shell([fish, "--no-execute", str(path)], env)  # parses
    out = run_shell([fish, "--no-config", "-c", f"source {path}; complete -C 'flamekit con'"], env)
    assert [line.split("\t")[0] for line in out.splitlines()] == ["convert"]

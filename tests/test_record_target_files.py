"""Issue #7 (security): the target's files are read as the target has them mapped.

A path in /proc/PID/maps is only the target's word for a file. A package upgrade renames
a new interpreter over the running one; a hostile target can rename anything over its
own binary; a target in another mount namespace sees other files under the same names.
flamekit reads the mapped file itself, so none of these fools it: each test here would
fail if the recorder opened the bare path. The interpreters are the Debian builds
(static: the interpreter is the executable itself, one file to copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythons import python314

DEBIAN311 = "/usr/bin/python3.11"

# Stays in one known function, ready for the recorder at once.
SCRIPT = """\
import sys
def spin_in_copied_interpreter():
    n = 0
    while True:
        n += 1
print("ready", flush=True)
spin_in_copied_interpreter()
"""


def _debian_pythons() -> list[str]:
    return [DEBIAN311, python314().path]


def _dump(pid: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", "dump", "-p", str(pid), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _functions(r: subprocess.CompletedProcess) -> set[str]:
    assert r.returncode == 0, r.stderr
    threads = json.loads(r.stdout)["threads"]
    return {f["function"] for t in threads for f in t["frames"]}


def _start(argv: list[str], python: str) -> subprocess.Popen:
    # A copied interpreter looks for its library beside itself: point it home.
    env = {**os.environ, "PYTHONHOME": str(Path(python).resolve().parent.parent)}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"target did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc


@pytest.mark.parametrize("python", _debian_pythons(), ids=["debian3.11", "3.14"])
def test_interpreter_replaced_on_disk_while_running(tmp_path: Path, python: str):
    """An upgrade (or the target itself) renames another file over the running binary:
    the recorder must read the one that is mapped, not the one now at that path."""
    exe = tmp_path / "bin" / Path(python).name
    exe.parent.mkdir()
    shutil.copy2(python, exe)
    script = tmp_path / "spin.py"
    script.write_text(SCRIPT)
    proc = _start([str(exe), str(script)], python)
    try:
        decoy = tmp_path / "decoy"
        shutil.copy2("/bin/sleep", decoy)  # an ELF with no _PyRuntime
        os.replace(decoy, exe)
        with open(f"/proc/{proc.pid}/maps") as f:
            assert f"{exe} (deleted)" in f.read()  # the mapped file is now nameless
        assert "spin_in_copied_interpreter" in _functions(_dump(proc.pid))
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
@pytest.mark.parametrize("python", _debian_pythons(), ids=["debian3.11", "3.14"])
def test_target_in_another_mount_namespace(tmp_path: Path, python: str):
    """The target runs an interpreter from a tmpfs mounted in its own mount namespace:
    the path it has mapped does not exist at all in ours."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    script = tmp_path / "spin.py"
    script.write_text(SCRIPT)
    name = Path(python).name
    inner = (
        f"mount -t tmpfs flamekit-test {hidden} && cp {python} {hidden}/{name} && "
        f"exec {hidden}/{name} {script}"
    )
    proc = _start(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner], python)
    try:
        assert not (hidden / name).exists()  # not here: only inside the target's namespace
        # unshare execs sh, which execs the interpreter: the pid is the target's.
        deadline = time.monotonic() + 10
        while not os.readlink(f"/proc/{proc.pid}/exe").endswith(name):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "spin_in_copied_interpreter" in _functions(_dump(proc.pid))
    finally:
        proc.kill()
        proc.wait()

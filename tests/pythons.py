"""The real CPython interpreters the recorder and symbolizer are tested against.

A missing interpreter is a failure, never a skip: the promise is that every CPython on
this machine image can be recorded. 3.14 is Debian's stripped build, installed on first
use by ``shared/tools/get-python314.sh`` unless ``FLAMEKIT_PYTHON314`` names one.

Two lists: :func:`recordable` (3.8-3.14, every recorder test) and :func:`legacy` (2.7,
3.6, 3.7: supported too, run by the tests named in issue 15 with leaner recordings, to
keep the suite's time).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PY314_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flamekit" / "py314"


@dataclass(frozen=True)
class Interpreter:
    id: str  #: short test id, e.g. "3.12" or "debian3.11"
    path: str
    version: tuple[int, int]

    def __str__(self) -> str:
        return self.id


def pyenv_root() -> Path:
    env = os.environ.get("PYENV_ROOT")
    if env:
        return Path(env)
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / ".pyenv"


def _pyenv(minor: int, major: int = 3) -> Interpreter:
    versions = pyenv_root() / "versions"
    found = sorted(versions.glob(f"{major}.{minor}.*/bin/python{major}.{minor}"))
    if not found:
        raise RuntimeError(
            f"CPython {major}.{minor} is missing from {versions}: the machine image should have it"
        )
    return Interpreter(f"{major}.{minor}", str(found[-1]), (major, minor))


def python314() -> Interpreter:
    """Debian's CPython 3.14, installing it into the cache the first time."""
    env = os.environ.get("FLAMEKIT_PYTHON314")
    if env:
        return Interpreter("3.14", env, (3, 14))
    exe = PY314_CACHE / "bin" / "python3.14"
    if not exe.exists():
        script = SHARED / "tools" / "get-python314.sh"
        subprocess.run(
            ["bash", str(script), str(PY314_CACHE)], check=True, stdout=subprocess.DEVNULL
        )
    return Interpreter("3.14", str(exe), (3, 14))


def recordable() -> list[Interpreter]:
    """Every interpreter the recorder must handle: pyenv 3.8-3.13, Debian 3.11, 3.14."""
    found = [_pyenv(m) for m in range(8, 14)]
    found.append(Interpreter("debian3.11", "/usr/bin/python3.11", (3, 11)))
    found.append(python314())
    return found


def legacy() -> list[Interpreter]:
    """The older interpreters flamekit supports: pyenv 2.7 (2.7.18), 3.6 (3.6.15) and 3.7
    (3.7.16). Their state is anchored otherwise (2.7 and 3.6: the interp_head variable,
    no _PyRuntime), their names are byte strings (2.7) and their line tables co_lnotab."""
    return [_pyenv(7, major=2), _pyenv(6), _pyenv(7)]

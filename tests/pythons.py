"""The real CPython interpreters the recorder and symbolizer are tested against.

A missing interpreter is a failure, never a skip: the promise is that every CPython on
this machine image can be recorded. 3.14 is Debian's stripped build, installed on first
use by ``shared/tools/get-python314.sh`` unless ``FLAMEKIT_PYTHON314`` names one.
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


def _pyenv(minor: int) -> Interpreter:
    versions = pyenv_root() / "versions"
    found = sorted(versions.glob(f"3.{minor}.*/bin/python3.{minor}"))
    if not found:
        raise RuntimeError(
            f"CPython 3.{minor} is missing from {versions}: the machine image should have it"
        )
    return Interpreter(f"3.{minor}", str(found[-1]), (3, minor))


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

"""The real programs of bench/real.py, each installed from PyPI into its own cached venv.

Nothing is vendored: a workload's venv is built once per interpreter under
``~/.cache/flamekit/bench-venvs/NAME-PYVER`` (``$FLAMEKIT_BENCH_VENVS`` moves it) with
pinned versions, and reused while its stamp (the pins) matches. Pins differ per
interpreter because the newest releases left 3.8 behind; the pins are part of the figures.
A venv that cannot be built (PyPI unreachable) raises :class:`VenvUnavailable`, which the
harness and its smoke test treat as a missing precondition, not a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: workload -> interpreter minor ("3.8") or "*" -> pinned requirements. Workloads written
#: against the standard library alone (http, asyncio) still get a venv, so that every
#: workload runs the same way; theirs is empty.
PINS: dict[str, dict[str, tuple[str, ...]]] = {
    "pylint": {
        "3.8": ("pylint==3.2.7", "astroid==3.2.4"),
        "*": ("pylint==4.1.5",),
    },
    "sympy": {
        "3.8": ("sympy==1.13.3", "mpmath==1.3.0"),
        "*": ("sympy==1.14.0", "mpmath==1.3.0"),
    },
    "pytest": {  # pytest running networkx's own test suite (shipped inside its wheel)
        "3.8": ("pytest==8.3.5", "networkx==3.1"),
        "*": ("pytest==9.0.2", "networkx==3.6.1"),
    },
    "numpy": {  # bench/native_numpy.py: C and BLAS under Python, --native beside py-spy's
        "3.8": ("numpy==1.24.4",),
        "*": ("numpy==2.5.5",),
    },
    "http": {"*": ()},
    "asyncio": {"*": ()},
}


class VenvUnavailable(Exception):
    """The venv could not be built here (no network, no such release): skip, say why."""


def cache_root() -> Path:
    env = os.environ.get("FLAMEKIT_BENCH_VENVS")
    return Path(env) if env else Path.home() / ".cache" / "flamekit" / "bench-venvs"


def pins_for(workload: str, minor: str) -> tuple[str, ...]:
    table = PINS[workload]
    return table.get(minor, table["*"])


def venv_python(workload: str, python: str, minor: str) -> str:
    """The interpreter of WORKLOAD's venv for PYTHON (built on first use, then cached)."""
    pins = pins_for(workload, minor)
    root = cache_root() / f"{workload}-{minor}"
    exe = root / "bin" / "python"
    stamp = root / "flamekit-bench-pins.txt"
    want = "\n".join((python, *pins)) + "\n"
    if exe.exists() and stamp.exists() and stamp.read_text() == want:
        return str(exe)
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    run = [python, "-m", "venv", str(root)]
    done = subprocess.run(run, capture_output=True, text=True)
    if done.returncode != 0:
        raise VenvUnavailable(f"{' '.join(run)}: {done.stderr.strip()[-300:]}")
    if pins:
        pip = [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        pip += ["--timeout", "20", "--retries", "1", *pins]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise VenvUnavailable(
                f"pip install {' '.join(pins)} for {python}: {done.stderr.strip()[-400:]}"
            )
    stamp.write_text(want)
    return str(exe)

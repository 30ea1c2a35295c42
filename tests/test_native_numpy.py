"""record --native on numpy (a real wheel from PyPI, in the bench's cached venv): numpy's
and OpenBLAS's C functions appear under the Python line that called them, in stacks
unwound whole through C++ frames. The share comparison with py-spy --native is the
bench's (bench/native_numpy.py, docs/benchmarks.md): py-spy is a bench-only dependency."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import native_numpy  # noqa: E402  (bench/native_numpy.py)
import real_venvs  # noqa: E402  (bench/real_venvs.py)
from native_ext import collapsed  # noqa: E402
from pythons import recordable  # noqa: E402

from flamekit.trace import load  # noqa: E402

WORKLOAD = native_numpy.WORKLOAD
#: the workload's function -> the object its C time is in, and a function of it that
#: numpy's own source names and only that call reaches (np.unique sorts too: qsort is
#: not sort_values' alone); the leaf may be deeper (malloc, memcpy)
CALLS = {
    "matmul": ("libscipy_openblas", "dgemm_"),
    "spectrum": ("_pocketfft_umath", "pocketfft::"),
    "unique_words": ("_multiarray_umath", "unique_numeric"),
    "cumulate": ("_multiarray_umath", "DOUBLE_add"),
}


def _line_of_body(name: str) -> int:
    """The line of ``name``'s one statement (its ``return``) in the workload."""
    lines = WORKLOAD.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    return at + 2


def test_numpy_c_functions_sit_under_the_python_line_that_called_them(tmp_path):
    interp = next(i for i in recordable() if i.id == "3.12")
    try:
        python = real_venvs.venv_python("numpy", interp.path, "3.12")
    except real_venvs.VenvUnavailable as exc:
        pytest.skip(f"numpy could not be installed from PyPI here: {exc}")
    out = tmp_path / "np.fkt"
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "--native", "-r", "200", "-o",
         str(out), "--", python, str(WORKLOAD), "4"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tr = load(out)
    stacks = [tr.native_stacks[n] for n in tr.native if n]
    assert len(stacks) >= 300, len(stacks)
    # whole stacks through numpy's C and C++ (DW_CFA_GNU_args_size, frames realigned for
    # AVX: CFA = *(rbp - 24)); cut only where the code has no call-frame information:
    # OpenBLAS's hand-written kernels (py-spy --native stops there too)
    objects = tr.native_objects[tr.header.pid]

    def object_of(ip: int) -> str:
        return next((o.path for o in objects for a, b, _, _ in o.ranges if a <= ip < b), "?")

    cut = [object_of(ips[-1]) for ips, c in stacks if c]
    elsewhere = [p for p in cut if "openblas" not in p]
    assert len(elsewhere) <= 0.03 * len(stacks), (len(elsewhere), len(stacks), elsewhere[:5])

    folded = collapsed(out, tmp_path / "np.txt")
    seen = dict.fromkeys(CALLS, 0)
    for line in folded.splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        mine = [i for i, f in enumerate(frames) if "(numpy_mix.py:" in f]
        if not mine:
            continue
        below = frames[mine[-1] + 1 :]
        for name, (obj, fn) in CALLS.items():
            if not any(fn in f and re.search(rf"\[{obj}[^\]]*\]$", f) for f in below):
                continue
            # the workload's function that calls it, at the line of its call, is the
            # innermost of the workload's frames: the C sits under that Python line
            assert frames[mine[-1]] == f"{name} (numpy_mix.py:{_line_of_body(name)})", (
                name, frames,
            )  # fmt: skip
            seen[name] += int(n)
    # each of numpy's C functions is seen, named (demangled C++ included)
    assert all(v >= 10 for v in seen.values()), seen

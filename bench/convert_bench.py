"""Benchmark ``flamekit convert`` on a 1,000,000-sample synthetic trace, per format.

The budget from issue #4: converting 1M samples (>= 5,000 distinct stacks, 8 threads) to
any format takes <= 10 s and <= 500 MB peak memory. Each conversion runs as its own
``python -m flamekit convert`` process, so the figures are the whole command (load,
symbolize, filter, convert, write) and peak RSS is that process's alone (``wait4``).

Usage::

    python bench/convert_bench.py                 # every registered format
    python bench/convert_bench.py --to collapsed --extra=--threads
    python bench/convert_bench.py --check         # exit 1 if any format is over budget
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flamekit.convert.base import formats
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

BUDGET_S = 10.0
BUDGET_MB = 500.0


def build_trace(path: Path, samples: int, stacks: int, threads: int) -> None:
    """Write the synthetic trace once; reuse it if it is already there."""
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        write_synthetic(f, samples=samples, stacks=stacks, threads=threads)
    os.replace(tmp, path)


def run_one(trace: Path, fmt: str, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit status) of one conversion in a fresh process."""
    cmd = [sys.executable, "-m", "flamekit", "convert", str(trace), "--to", fmt, "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        print(f"  {fmt}: exit {proc.returncode}: {err.strip()}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--stacks", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--trace", type=Path, help="trace to use (built here if missing)")
    ap.add_argument("--to", action="append", help="format(s) to time (default: all)")
    ap.add_argument("--extra", action="append", default=[], help="extra convert option(s)")
    ap.add_argument("--check", action="store_true", help="exit 1 if over the budget")
    args = ap.parse_args()

    workdir = Path(tempfile.gettempdir()) / "flamekit-bench"
    workdir.mkdir(exist_ok=True)
    trace = args.trace or workdir / (f"synthetic-{args.samples}-{args.stacks}-{args.threads}.fkt")
    t0 = time.perf_counter()
    build_trace(trace, args.samples, args.stacks, args.threads)
    loaded = load(trace)
    print(
        f"trace: {trace} ({trace.stat().st_size / 1e6:.1f} MB, {len(loaded):,} samples, "
        f"{len(loaded.stacks):,} stacks, {len(loaded.threads)} threads; "
        f"ready in {time.perf_counter() - t0:.1f} s)"
    )
    del loaded
    names = args.to or list(formats())
    over = False
    print(f"{'format':<12} {'wall s':>8} {'peak MB':>9} {'output MB':>10}  status")
    for name in names:
        out = workdir / f"out-{name}"
        wall, rss, rc = run_one(trace, name, out, args.extra)
        size = out.stat().st_size / 1e6 if out.exists() else 0.0
        ok = rc == 0 and wall <= BUDGET_S and rss <= BUDGET_MB
        over |= not ok
        status = "ok" if ok else ("FAILED" if rc else "OVER BUDGET")
        print(f"{name:<12} {wall:>8.2f} {rss:>9.1f} {size:>10.1f}  {status}")
        if out.exists():
            out.unlink()
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())

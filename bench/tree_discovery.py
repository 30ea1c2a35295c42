"""What finding new processes costs ``record --subprocesses``, per tick.

The recorder asks the tree for new processes every POLL_S (20 ms), not every tick: this
measures one ask (:meth:`ProcessTree.poll` on a live prefork tree of WORKERS workers, its
CPU time from the recorder's own rusage) and spreads it over the ticks between two asks
at each rate. Rounds alternate with an empty measure of the same loop (nothing asked) so
that the loop's own cost is taken out.

Usage::

    python bench/tree_discovery.py                 # 8 workers, 2000 asks a round, 5 rounds
    python bench/tree_discovery.py --workers 32 --python 3.8
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as bench  # noqa: E402
from subprocesses import start_tree  # noqa: E402

from flamekit.record.proc.tree import POLL_S, ProcessTree  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_ask_us(root: int, asks: int) -> float:
    """CPU µs of one ask of a tree whose processes are all known (the steady case)."""
    tree = ProcessTree(root)
    tree.poll()  # the first ask finds them all
    t0 = cpu_s()
    for _ in range(asks):
        if tree.poll():
            raise RuntimeError("the tree changed during the measure")
    return (cpu_s() - t0) / asks * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--asks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    python = bench.pyenv_python(args.python)
    with tempfile.TemporaryDirectory() as tmp:
        proc, tree = start_tree(python, args.workers, 60.0, Path(tmp))
        try:
            found = ProcessTree(tree["master"]).poll()
            assert len(found) >= args.workers, found
            asks = [per_ask_us(tree["master"], args.asks) for _ in range(args.rounds)]
        finally:
            proc.kill()
            proc.wait()
    ask = statistics.median(asks)
    print(f"tree of {args.workers} workers: one ask {ask:.1f} µs CPU (median of "
          f"{args.rounds} rounds, range {min(asks):.1f}-{max(asks):.1f})")  # fmt: skip
    print("| rate | asks a tick | discovery CPU a tick |")
    print("|---|---|---|")
    for rate in (100, 1000):
        per_tick = min(1.0, 1 / (POLL_S * rate))
        print(f"| {rate} Hz | {per_tick:.2g} | {ask * per_tick:.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

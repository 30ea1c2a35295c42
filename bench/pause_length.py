"""How long the target stays stopped per sample in pausing mode (what the README promises).

Runs the same steps as one tick of ``flamekit record`` while the target is held, on the
50-deep spinning workload (bench/workloads/deep.py): PTRACE_INTERRUPT every thread and
wait for the stops, walk every stack, check the code objects, resume. The time from the
interrupt to the resume is what the target loses; medians and tails are printed.

Usage::

    python bench/pause_length.py                         # 3.12, 50 deep, 1 thread, 2000 pauses
    python bench/pause_length.py --python 3.8 --depth 200 --threads 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402

from flamekit.record.code_reader import CodeReader  # noqa: E402
from flamekit.record.code_refs import CodeRefs  # noqa: E402
from flamekit.record.proc.pause import Pauser  # noqa: E402
from flamekit.record.target import open_target  # noqa: E402
from flamekit.record.walk import StackWalker  # noqa: E402


def measure(python: str, depth: int, threads: int, count: int, rate: float) -> dict:
    cmd = [python, str(HERE / "workloads" / "deep.py"), "--depth", str(depth)]
    proc = subprocess.Popen([*cmd, "--threads", str(threads)], stdout=subprocess.PIPE, text=True)
    try:
        pid = json.loads(proc.stdout.readline())["ready"]  # type: ignore[union-attr]
        target = open_target(pid)
        walker = StackWalker(target)
        refs = CodeRefs(CodeReader(target), lambda ref, info: None)
        pauser = Pauser(pid)
        held: list[int] = []
        frames = 0
        try:
            for _ in range(count):
                t0 = time.perf_counter_ns()
                pauser.pause()
                stacks = walker.walk()
                for st in stacks:
                    if st.frames:
                        refs.refs([a for a, _ in st.frames])
                pauser.resume()
                held.append(time.perf_counter_ns() - t0)
                frames = sum(len(st.frames) for st in stacks)
                time.sleep(max(0.0, 1 / rate - held[-1] / 1e9))
        finally:
            pauser.close()
            target.close()
    finally:
        proc.terminate()
        proc.wait()
    held.sort()
    q = statistics.quantiles(held, n=100)
    return {
        "python": bench.python_version(python),
        "depth": depth,
        "threads": threads,
        "frames_per_tick": frames,
        "pauses": count,
        "median_us": round(statistics.median(held) / 1e3, 1),
        "p90_us": round(q[89] / 1e3, 1),
        "p99_us": round(q[98] / 1e3, 1),
        "max_us": round(held[-1] / 1e3, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", help="pyenv version or path (repeatable)")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=1000.0)
    args = ap.parse_args()
    for version in args.python or ["3.12"]:
        print(
            json.dumps(
                measure(
                    bench.pyenv_python(version), args.depth, args.threads, args.count, args.rate
                )
            )
        )


if __name__ == "__main__":
    main()

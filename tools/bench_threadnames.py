#!/usr/bin/env python3
"""Measure ThreadNames.lookup: the cost of naming 10 threads of a live target.

Starts tests/targets/threadnames_named.py under the given interpreter (10 named
threads besides the main one), takes their ids from the stack walker, and times
lookup() of those 10 ids: the first call (ELF symbols, sys.modules walk) once, then the
cached path in 20 rounds of 200 calls. Prints wall and CPU time per lookup; on a busy
machine trust the minimum and the CPU figure more than the wall median.

Usage: python tools/bench_threadnames.py [PYTHON]   (default: pyenv's 3.12)
Run as root or as the target's user (it reads the target's memory).
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flamekit.record.code_reader import CodeReader  # noqa: E402
from flamekit.record.target import open_target  # noqa: E402
from flamekit.record.threadnames import ThreadNames  # noqa: E402
from flamekit.record.walk import StackWalker  # noqa: E402


def default_python() -> str:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(f"{root}/versions/3.12.*/bin/python3.12"))
    if not found:
        raise SystemExit("no pyenv 3.12 found: pass an interpreter")
    return found[-1]


def main() -> int:
    exe = sys.argv[1] if len(sys.argv) > 1 else default_python()
    target_script = ROOT / "tests" / "targets" / "threadnames_named.py"
    proc = subprocess.Popen(
        [exe, str(target_script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        expected = {int(k): v for k, v in info["names"].items()}
        target = open_target(proc.pid)
        walker = StackWalker(target)
        walked = [st.thread_id for st in walker.walk()]
        ids = [i for i in walked if i in expected and expected[i] != "MainThread"][:10]
        assert len(ids) == 10, ids
        # What the recorder passes: the walker's interpreters (TEMPORARY getattr until
        # StackWalker.interpreters is merged; None: lookup reads the list itself).
        interps = walker.interpreters
        t0 = time.perf_counter()
        names = ThreadNames(target, CodeReader(target))
        got = names.lookup(ids, interps)
        first = time.perf_counter() - t0
        assert got == {i: expected[i] for i in ids}, got
        wall, cpu = [], []
        for _ in range(20):
            n = 200
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                names.lookup(ids, interps)
            wall.append((time.perf_counter() - w0) / n * 1e6)
            cpu.append((time.process_time() - c0) / n * 1e6)
        print(
            f"CPython {target.version_string}, 10 threads: first lookup {first * 1e3:.1f} ms; "
            f"cached lookup wall median {statistics.median(wall):.0f} us "
            f"(min {min(wall):.0f}), cpu median {statistics.median(cpu):.0f} us "
            f"(min {min(cpu):.0f}); load average {os.getloadavg()[0]:.1f}"
        )
        target.close()
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

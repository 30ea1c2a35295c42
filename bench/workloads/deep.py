"""Benchmark target: CPU-bound Python, DEPTH frames deep, in THREADS threads.

Protocol (one JSON object per stdout line):

1. prints ``{"ready": PID}`` once every thread is DEPTH frames deep;
2. ``--work N``: waits for a line on stdin ("go"), runs N leaf calls at the bottom of the
   stack in the main thread, timed with perf_counter, prints ``{"elapsed": S, "cpu": S}``
   and exits when stdin closes;
3. without ``--work`` every thread (the main one too) spins until SIGTERM or
   ``--max-seconds``.

``--calibrate S`` prints ``{"per_second": N}``: leaf calls per second unprofiled, so the
harness can choose N for a run of about the length it wants.

Runs on CPython 2.7 and 3.6+ (plain syntax only; 2.7 has no time.perf_counter).
"""

# ruff: noqa: UP004, UP009, UP010, UP036, UP031

from __future__ import print_function

import argparse
import json
import os
import sys
import threading
import time

sys.setrecursionlimit(100000)  # --depth up to the recorder's cap
perf_counter = getattr(time, "perf_counter", time.time)

STOP = threading.Event()
DEADLINE = float("inf")


def leaf(i):
    return (i * 7) & 1023


def spin(n):
    """n leaf calls (or until STOP when n is None): the frame that does the work."""
    acc = 0
    if n is None:
        i = 0
        while not STOP.is_set() and time.time() < DEADLINE:
            for _ in range(2000):
                acc += leaf(i)
                i += 1
        return acc
    for i in range(n):
        acc += leaf(i)
    return acc


def descend(depth, n, at_bottom):
    """Recurse until the stack is ``depth`` frames deep (counting the thread's own
    entry frames), then do the work."""
    if depth > 1:
        return descend(depth - 1, n, at_bottom)
    if at_bottom is not None:
        at_bottom()
    return spin(n)


def own_depth():
    f = sys._getframe(1)
    d = 0
    while f is not None:
        d += 1
        f = f.f_back
    return d


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=int, help="leaf calls to time in the main thread")
    ap.add_argument("--calibrate", type=float, help="seconds to calibrate for")
    ap.add_argument("--max-seconds", type=float, default=1800, help="spin no longer than this")
    args = ap.parse_args()

    if args.calibrate:
        n = 1000
        while True:
            t0 = perf_counter()
            spin(n)
            dt = perf_counter() - t0
            if dt >= args.calibrate:
                emit({"per_second": n / dt})
                return
            n *= 2

    # Frames below descend(): <module>, main(), and (for threads) the threading machinery.
    base_main = own_depth() + 1
    global DEADLINE
    DEADLINE = time.time() + args.max_seconds
    workers = max(0, args.threads - 1)
    in_place = threading.Semaphore(0)
    threads = []
    for _ in range(workers):
        t = threading.Thread(target=_worker, args=(args.depth, in_place))
        t.daemon = True
        t.start()
        threads.append(t)
    for _ in threads:
        in_place.acquire()

    if args.work is None:
        # Every thread spins, the main thread too; SIGTERM (or --max-seconds) ends it.
        descend(max(1, args.depth - base_main), None, lambda: emit({"ready": os.getpid()}))
        return

    emit({"ready": os.getpid()})
    sys.stdin.readline()  # "go"
    out = {}

    def start_clock():
        out["t0"] = perf_counter()
        out["c0"] = time.thread_time() if hasattr(time, "thread_time") else time.clock()

    descend(max(1, args.depth - base_main), args.work, start_clock)
    t1 = perf_counter()
    c1 = time.thread_time() if hasattr(time, "thread_time") else time.clock()
    emit({"elapsed": t1 - out["t0"], "cpu": c1 - out["c0"]})
    _wait_stdin()
    STOP.set()


def _worker(depth, in_place):
    # threading adds Thread._bootstrap, _bootstrap_inner and run below _worker.
    descend(max(1, depth - own_depth() - 1), None, in_place.release)


def _wait_stdin():
    try:
        while sys.stdin.readline():
            pass
    finally:
        STOP.set()
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()

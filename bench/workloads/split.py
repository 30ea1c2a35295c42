"""Benchmark target with a known CPU split: ``light`` 25%, ``heavy`` 75%.

Each round draws a chunk size at random (so no sampler can phase-lock with the rounds),
runs ``light`` for one chunk and ``heavy`` for three; both do the same arithmetic inline
(no calls below them), so the split is 25/75 of the work. The program also measures its
own split with the thread CPU clock and reports it as ``{"light_cpu": S, "heavy_cpu": S}``
on SIGTERM, or at ``--max-seconds``.

Protocol: prints ``{"ready": PID}``, spins until SIGTERM, prints the totals and exits.
Runs on CPython 3.6+.
"""

# ruff: noqa: UP004, UP009, UP010, UP036

from __future__ import print_function

import argparse
import json
import os
import random
import signal
import sys
import time

STOP = []


def light(n):
    acc = 0
    for i in range(n):
        acc += (i * 7) & 1023
    return acc


def heavy(n):
    acc = 0
    for i in range(n):
        acc += (i * 7) & 1023
    return acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-seconds", type=float, default=1800)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: STOP.append(1))
    rng = random.Random(1234)
    clock = time.thread_time
    light_cpu = heavy_cpu = 0.0
    deadline = time.time() + args.max_seconds
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    while not STOP and time.time() < deadline:
        n = rng.randrange(2000, 20000)
        c0 = clock()
        light(n)
        c1 = clock()
        heavy(3 * n)
        c2 = clock()
        light_cpu += c1 - c0
        heavy_cpu += c2 - c1
    sys.stdout.write(json.dumps({"light_cpu": light_cpu, "heavy_cpu": heavy_cpu}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

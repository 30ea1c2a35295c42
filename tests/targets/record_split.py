"""Target for tests/test_record_e2e.py's accuracy test: 25% / 75% of CPU by construction.

    python record_split.py READY_FILE

The main loop calls ``quarter(k)`` then ``three_quarters(3 * k)``: the two functions
have the same body, so each round spends exactly a quarter of its work in the first and
three quarters in the second, whatever k is. k is drawn at random (seeded) for each
round, about 0.3 to 1.5 ms of work for ``quarter``, so the rounds never settle into a
period that a fixed-rate sampler could lock onto. READY_FILE gets {"pid": ...} after a
warm-up (3.11+ specializes the loops in the first calls).
"""

import json
import os
import random
import sys
import time

READY_FILE = sys.argv[1]


def quarter(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def three_quarters(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def iterations_per_ms():
    quarter(10_000)
    three_quarters(10_000)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        quarter(20_000)
        best = min(best, time.perf_counter() - t)
    return max(1, int(20_000 / (best * 1000)))


def main():
    per_ms = iterations_per_ms()
    lo, hi = max(1, int(0.3 * per_ms)), max(2, int(1.5 * per_ms))
    rng = random.Random(1234)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # warm-up
        k = rng.randint(lo, hi)
        quarter(k)
        three_quarters(3 * k)
    with open(READY_FILE + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "iterations_per_ms": per_ms}, f)
    os.replace(READY_FILE + ".tmp", READY_FILE)
    while True:
        k = rng.randint(lo, hi)
        quarter(k)
        three_quarters(3 * k)


if __name__ == "__main__":
    main()

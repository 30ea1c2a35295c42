"""A CPU-bound program whose hot function moves between two modes, by construction.

``python diff_modes.py A [SECONDS]``: about 70% of the time in ``parse``, 15% each in
``render`` and ``checksum``. Mode ``B``: 30% in ``parse``, 35% each in the other two.

Shares are set by wall-clock time, not by amounts of work, so they hold on any machine
and any Python version: the program runs in rounds, and in each round every phase
busy-loops *inside its own function* (the clock check included) until its slice of the
round is used up. A sampler therefore finds ``parse`` as the innermost Python frame for
its slice of every round, whatever one loop iteration costs. The true difference
between the modes is parse: 30 - 70 = -40 points, render and checksum +20 each.

Round lengths vary at random between 50 and 150 ms (seeded, so runs repeat): a fixed
round would be in step with a sampler's fixed period (20 ms rounds under a 100 Hz sampler
hit the same two instants of every round) and the measured shares would be aliases. The
rounds are long next to a sampler's pause (about a millisecond with ptrace) and an OS
time slice: while the target is stopped, wall time runs on but the target stays in its
current phase, so with phases of a few milliseconds those stops shifted measured shares
by about 4 points; with phases of 7 ms and more the shift is well under one point.
"""

from __future__ import annotations

import random
import sys
import time

ROUND_S = (0.05, 0.15)
#: mode -> (parse, render, checksum) shares of each round
MODES = {"A": (0.70, 0.15, 0.15), "B": (0.30, 0.35, 0.35)}
TEXT = "alpha=1, beta=22, gamma=333, delta=4444, epsilon=55555"


def parse(until: float) -> int:
    """Tokenize the same text again and again until ``until`` (perf_counter seconds)."""
    n = 0
    clock = time.perf_counter
    while clock() < until:
        for part in TEXT.split(","):
            key, _, value = part.partition("=")
            n += len(key.strip()) + int(value)
    return n


def render(until: float) -> int:
    """Build strings until ``until``."""
    n = 0
    clock = time.perf_counter
    while clock() < until:
        parts = []
        for i in range(8):
            parts.append(f"<{i}>")
        n += len("".join(parts))
    return n


def checksum(until: float) -> int:
    """Integer arithmetic until ``until``."""
    n = 0
    clock = time.perf_counter
    while clock() < until:
        for i in range(16):
            n = (n * 31 + i) & 0xFFFFFFFF
    return n


def run(mode: str, seconds: float) -> int:
    """Rounds of parse, render and checksum in the mode's proportions, for ``seconds``."""
    p, r, _ = MODES[mode]
    rng = random.Random(5)
    total = 0
    clock = time.perf_counter
    end = clock() + seconds
    while True:
        start = clock()
        if start >= end:
            return total
        length = rng.uniform(*ROUND_S)
        total += parse(start + p * length)
        total += render(start + (p + r) * length)
        total += checksum(start + length)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "A"
    if mode not in MODES:
        sys.exit(f"usage: diff_modes.py A|B [SECONDS] (not {mode!r})")
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    run(mode, seconds)


if __name__ == "__main__":
    main()

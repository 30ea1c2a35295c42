"""Eval-entry target: the main thread has C call back into Python all the time (map
calling a function, functools.reduce a lambda), for SECONDS seconds (argv[1], default 2).
Each call from C enters the interpreter loop anew; on 3.11 and 3.12 that entry points
the thread state at a new _PyCFrame a few instructions before the frame it runs is
stored in it, so a sample can catch the thread state naming a frame not yet there.
Runs on CPython 2.7 and 3.6+.
"""

# This file must stay valid Python 2.7.

import functools
import sys
import time

monotonic = getattr(time, "monotonic", time.time)  # 2.7 has no time.monotonic


def step(x):
    return x + 1


def mapped(n):
    return sum(map(step, range(n)))


def reduced(n):
    return functools.reduce(lambda a, b: a + b, range(n))


def work(deadline):
    s = 0
    while monotonic() < deadline:
        s += mapped(2000) + reduced(2000)
    return s


work(monotonic() + (float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))

"""tests/targets/gen_chain.py for CPython 2.7, which has no `yield from` (PEP 380, 3.3):
each generator of the chain, 20 deep, resumes the one below it from a for loop and
yields what it gets. As with `yield from`, every value passes through every generator,
whose frames are linked into the thread's chain while one runs and unlinked when it
yields; a read racing that meets suspended generators, whose frames link to nothing.
"""

# This file must stay valid Python 2.7 (it is only run there).
# ruff: noqa: UP028

import sys
import time


def leaf(n):
    for i in range(n):
        yield i % 17


def chain_level(depth, n):
    inner = leaf(n) if depth == 0 else chain_level(depth - 1, n)
    for v in inner:
        yield v


def consume(deadline):
    s = 0
    while time.time() < deadline:
        for v in chain_level(20, 20000):
            s += v
    return s


consume(time.time() + (float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))

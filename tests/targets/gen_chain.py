"""Torn-read target: the main thread pulls values through a `yield from` chain 20
generators deep for SECONDS seconds (argv[1], default 2), then exits. Every value passes
through every generator: their frames, which live in the generator objects, are linked
into the thread's chain while one runs and unlinked when it yields, all the time. A read
racing that (--nonblocking) meets generators already suspended, whose frames link to
nothing: such a chain must not be recorded as a stack.
"""

import sys
import time


def leaf(n):
    for i in range(n):
        yield i % 17


def chain_level(depth, n):
    if depth == 0:
        yield from leaf(n)
    else:
        yield from chain_level(depth - 1, n)


def consume(deadline):
    s = 0
    while time.monotonic() < deadline:
        for v in chain_level(20, 20000):
            s += v
    return s


consume(time.monotonic() + (float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))

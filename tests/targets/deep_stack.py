"""Walker-reuse target with stacks deeper than a data-stack chunk (3.11+: a chunk holds a
few hundred frames; the rest of a chain lies in older chunks). Three threads recurse 400
to 2,500 frames down, with generator frames and C-called callbacks (frames outside the
chunks) along the way, work at the bottom for a few milliseconds, and now and then come
back up part of the way and go down again: between samples the deep part of a chain
mostly stays put and sometimes changes, at any depth. Prints {"ready": PID} once every
thread is down and runs until killed (the main thread waits, idle). Runs on CPython 2.7
and 3.6+.
"""

# This file must stay valid Python 2.7.

import json
import os
import random
import sys
import threading

sys.setrecursionlimit(20000)
threading.stack_size(256 << 20)  # 2.7-3.10 recurse on the C stack too
if hasattr(sys, "setswitchinterval"):  # 2.7: its GIL goes by ticks
    sys.setswitchinterval(0.05)


def leaf(n):
    x = 0
    for i in range(n):
        x += i
    return x


def gen(d, r, ready):
    yield down(d - 1, r, ready)


def down(d, r, ready):
    if d <= 0:
        ready.set()
        return leaf(r.randrange(20000, 200000))
    if d % 97 == 13:  # a generator's frame, outside the data stack
        return sum(gen(d, r, ready))
    if d % 131 == 7:  # an entry frame on the C stack (3.12+) under the callback's
        return sorted([3, 1, 2], key=lambda v: down(d - 1, r, ready) if v == 1 else v)[0]
    if d % 50 == 0 and r.random() < 0.2:
        # back here a few times: the part of the chain below changes, the part above not
        return down(d - 1, r, ready) + down(d - 1, r, ready)
    return down(d - 1, r, ready)


def loop(seed, ready):
    r = random.Random(seed)
    while True:
        down(r.randrange(400, 2500), r, ready)


def main():
    readies = [threading.Event() for _ in range(3)]
    for i, ready in enumerate(readies):
        t = threading.Thread(target=loop, args=(i, ready))
        t.daemon = True
        t.start()
    for ready in readies:
        ready.wait()
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    threading.Event().wait()


main()

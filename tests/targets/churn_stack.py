"""Walker-reuse target: three threads whose stacks change shape all the time.

Random recursion depths, generator frames (which live outside the data stack on 3.11+),
callbacks called from C (sorted's key: an entry frame on the C stack on 3.12+) and
exceptions unwinding, so consecutive samples share a bottom part of varying height.
Prints {"ready": PID} and runs until killed. Runs on CPython 2.7 and 3.6+.
"""

# This file must stay valid Python 2.7.

import json
import os
import random
import sys
import threading

sys.setrecursionlimit(5000)


def leaf(n):
    x = 0
    for i in range(n):
        x += i
    return x


def work(how):
    if how == 0:
        return leaf(300)
    if how == 1:
        try:
            raise ValueError(how)
        except ValueError:
            return leaf(100)
    return leaf(20)


def gen(d, how):
    yield down(d - 1, how)


def down(d, how):
    if d <= 0:
        return work(how)
    if d % 7 == 3:
        return sum(g for g in gen(d, how))
    if d % 11 == 5:
        return sorted([3, 1, 2], key=lambda v: down(d - 1, how) if v == 1 else v)[0]
    return down(d - 1, how)


def loop(seed):
    r = random.Random(seed)
    while True:
        down(r.randrange(0, 60), r.randrange(3))


for i in range(2):
    t = threading.Thread(target=loop, args=(i,))
    t.daemon = True
    t.start()
sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
sys.stdout.flush()
loop(99)

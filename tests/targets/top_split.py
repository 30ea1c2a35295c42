"""Target for tests/test_top_live.py: a known hot function, a caller, and an idle thread.

    python top_split.py READY_FILE

The main thread runs ``aa_caller``, which spends about 70% of its work in ``zz_hot`` and
30% in its own loop, for ever: by own samples ``zz_hot`` ranks first, by total samples
``aa_caller`` (``<module>`` has the same total and no own samples), by name ``<module>``.
A thread named ``idler`` sleeps (idle samples). READY_FILE gets {"pid": ...} once both
run and the loops are warm (3.11+ specializes them in the first calls).
"""

import json
import os
import sys
import threading
import time


def zz_hot(n):
    acc = 0
    for i in range(n):
        acc = (acc + i * i) & 0xFFFF
    return acc


def aa_caller(ready):
    while True:
        zz_hot(7000)
        acc = 0
        for i in range(3000):
            acc = (acc + i * i) & 0xFFFF
        if ready:
            ready()
            ready = None


def _idle():
    while True:
        time.sleep(1)


def _ready():
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid()}, f)
    os.rename(tmp, sys.argv[1])


threading.Thread(target=_idle, name="idler", daemon=True).start()
for _ in range(50):
    zz_hot(7000)
aa_caller(_ready)

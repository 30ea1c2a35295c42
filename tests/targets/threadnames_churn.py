# -*- coding: utf-8 -*-
"""Target for tests/test_threadnames.py: names read while everything changes under us.

Threads named "churn-N" start and end all the time (so threading._active is resized and
its entries come and go), one thread renames itself in a tight loop between names of
different lengths and PEP 393 kinds, and one renames itself to new strs (freeing the
old ones) every 100 us. Prints one JSON line, then runs until stdin closes.
Kept 2.7-compatible.
"""

# ruff: noqa: UP009, UP010, UP025, UP031 -- this file also runs on CPython 2.7
from __future__ import print_function, unicode_literals

import json
import os
import sys
import threading
import time

PY2 = sys.version_info[0] == 2
HOT = ["hot-a", "hot-λλ", "hot-" + "c" * 40, "hot-\U0001f40d"]
stop = threading.Event()


def text(s):
    return s.encode("utf-8") if PY2 else s


def short():
    time.sleep(0.02)


def churn():
    n = 0
    while not stop.is_set():
        batch = [threading.Thread(target=short, name="churn-%d" % (n + i)) for i in range(8)]
        n += len(batch)
        for t in batch:
            t.daemon = True
            t.start()
        for t in batch:
            t.join()


def hot_renamer():
    """Renames itself as fast as it can between long-lived names (no str is freed)."""
    me = threading.current_thread()
    names = [text(n) for n in HOT]
    i = 0
    while not stop.is_set():
        me.name = names[i % len(names)]
        i += 1
        if i % 64 == 0:
            time.sleep(0)  # let the other threads have the GIL now and then


def renamer():
    """Renames itself to a freshly built str every 100 us (the old one is freed)."""
    me = threading.current_thread()
    i = 0
    while not stop.is_set():
        me.name = text("spin-%d-é" % i)
        i += 1
        time.sleep(0.0001)


for fn in (churn, hot_renamer, renamer):
    t = threading.Thread(target=fn, name=text(HOT[0]))
    t.daemon = True
    t.start()
print(json.dumps({"pid": os.getpid()}))
sys.stdout.flush()
sys.stdin.read()
stop.set()

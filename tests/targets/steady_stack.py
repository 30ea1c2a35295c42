"""Walker-reuse target whose thread states stay put: three threads, each a fixed depth
down (20, 30 and 45 frames) in a loop that calls nothing, so between samples only the
innermost frame's instruction pointer and locals change. Prints {"ready": PID} once all
three are in place and runs until killed. Runs on CPython 2.7 and 3.6+.
"""

# This file must stay valid Python 2.7.

import json
import os
import sys
import threading

sys.setrecursionlimit(5000)
# Every hand-over of the GIL changes thread-state bytes the walker compares: at the default
# 5 ms a slow machine's rounds would see one in most of them. Still every ~50 ms: the
# walker must notice those too. (2.7's GIL goes by ticks, sys.setcheckinterval: the
# thread states change at every hand-over there; what the walker reuses is checked all
# the same.)
if hasattr(sys, "setswitchinterval"):
    sys.setswitchinterval(0.05)


def spin(ready):
    ready.set()
    x = 0
    while True:
        x = (x * 31 + 7) & 0xFFFF


def down(d, ready):
    if d <= 0:
        spin(ready)
    return down(d - 1, ready)


def announce():
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()


events = [threading.Event() for _ in range(2)]
for depth, ev in zip((20, 30), events):
    t = threading.Thread(target=down, args=(depth, ev))
    t.daemon = True
    t.start()
for ev in events:
    ev.wait()
main_ready = threading.Event()
threading.Timer(0.05, announce).start()
down(45, main_ready)

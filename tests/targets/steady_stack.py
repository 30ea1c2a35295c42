"""Walker-reuse target whose thread states stay put: three threads, each a fixed depth
down (20, 30 and 45 frames) in a loop that calls nothing, so between samples only the
innermost frame's instruction pointer and locals change. Prints {"ready": PID} once all
three are in place and runs until killed.
"""

import json
import os
import sys
import threading

sys.setrecursionlimit(5000)
# Every hand-over of the GIL changes thread-state bytes the walker compares: at the default
# 5 ms a slow machine's rounds would see one in most of them. Still every ~50 ms: the
# walker must notice those too.
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


events = [threading.Event() for _ in range(2)]
for depth, ev in zip((20, 30), events):
    threading.Thread(target=down, args=(depth, ev), daemon=True).start()
for ev in events:
    ev.wait()
main_ready = threading.Event()
threading.Timer(0.05, lambda: print(json.dumps({"ready": os.getpid()}), flush=True)).start()
down(45, main_ready)

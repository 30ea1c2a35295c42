"""Target for tests of the pause bound: recurse DEPTH frames down, then spin there for
SECONDS, timing every pass of the loop; prints {"ready": PID} at the bottom and, at the
end, {"max_stall_ms": ..., "stalls_over_20ms": ...}: how long the process was held at
most (a recorder's pause stops it; nothing else here waits).

    python stall_meter.py DEPTH SECONDS
"""

import json
import os
import sys
import threading
import time

DEPTH = int(sys.argv[1])
SECONDS = float(sys.argv[2])
sys.setrecursionlimit(DEPTH + 1000)
threading.stack_size(1 << 30)  # 3.10 and older recurse on the C stack too


def down(d):
    if d > 0:
        return down(d - 1)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    worst = 0.0
    over = 0
    end = time.perf_counter() + SECONDS
    last = time.perf_counter()
    while last < end:
        now = time.perf_counter()
        gap = now - last
        if gap > worst:
            worst = gap
        if gap > 0.02:
            over += 1
        last = now
    return worst, over


def main():
    worst, over = down(DEPTH)
    print(json.dumps({"max_stall_ms": worst * 1e3, "stalls_over_20ms": over}), flush=True)


t = threading.Thread(target=main)
t.start()
t.join()

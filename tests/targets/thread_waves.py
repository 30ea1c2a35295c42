"""Thread-identity target: 10 waves of 4 short threads, each wave joined before the next
starts, so glibc hands a new thread a dead one's struct pthread (the same ident) and
CPython often a dead one's thread-state address. Each thread spins ~50 ms, then logs its
name and kernel tid; the log is written to argv[1] at the end.
"""

import sys
import threading
import time

log = []


def work():
    end = time.monotonic() + 0.05
    x = 0
    while time.monotonic() < end:
        x += 1
    log.append((threading.current_thread().name, threading.get_native_id()))


for wave in range(10):
    threads = [threading.Thread(target=work, name=f"wave{wave}-{j}") for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
with open(sys.argv[1], "w") as f:
    f.writelines(f"{name} {tid}\n" for name, tid in log)

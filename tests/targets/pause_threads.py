"""Target for tests/test_pause.py: N worker threads and a progress counter in a file.

Usage: pause_threads.py NTHREADS COUNTER_FILE [SECONDS [EXIT_CODE [MODE]]]
MODE is "mixed" (default: half the workers spin, half sleep briefly), "spin" or
"sleep". The main thread writes the workers' total progress to COUNTER_FILE every few
milliseconds, prints "ready" once every thread runs, and exits with EXIT_CODE after
SECONDS (0: run until killed), printing the final count.
"""

import os
import sys
import threading
import time

nthreads = int(sys.argv[1])
path = sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
exit_code = int(sys.argv[4]) if len(sys.argv) > 4 else 0
mode = sys.argv[5] if len(sys.argv) > 5 else "mixed"

sys.setswitchinterval(0.0005)  # the main thread must get the GIL often to report
counts = [0] * nthreads
stop = threading.Event()
started = threading.Barrier(nthreads + 1)


def worker(i: int) -> None:
    spin = mode == "spin" or (mode == "mixed" and i % 2 == 0)
    started.wait()
    while not stop.is_set():
        counts[i] += 1
        if not spin:
            time.sleep(0.001)


threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nthreads)]
for t in threads:
    t.start()
started.wait()
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"%20d\n" % 0, 0)
print("ready", flush=True)
end = time.monotonic() + seconds if seconds else None
main_ticks = 0
while end is None or time.monotonic() < end:
    main_ticks += 1
    os.pwrite(fd, b"%20d\n" % (sum(counts) + main_ticks), 0)
    time.sleep(0.002)
stop.set()
for t in threads:
    t.join()
print("done", sum(counts) + main_ticks, flush=True)
sys.exit(exit_code)

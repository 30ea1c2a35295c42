"""Target for tests/test_pause.py: the main thread ends, two other threads run on.

Usage: pause_lone_threads.py COUNTER_FILE SECONDS. The main thread calls pthread_exit
(the process's leader becomes a zombie the kernel will not let a tracer seize); the
workers write progress to COUNTER_FILE, and the process ends after SECONDS.
"""

import ctypes
import os
import sys
import threading
import time

path, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"%20d\n" % 0, 0)
count = [0]


def work(writer: bool) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        count[0] += 1
        if writer:
            os.pwrite(fd, b"%20d\n" % count[0], 0)
        time.sleep(0.001)
    if writer:
        os._exit(0)  # no interpreter shutdown: its main thread is gone


for writer in (True, False):
    threading.Thread(target=work, args=(writer,)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)

"""Thread-identity target: 10 waves of 4 short threads, each wave joined before the next
starts, so glibc hands a new thread a dead one's struct pthread (the same ident) and
CPython often a dead one's thread-state address. Each thread spins ~50 ms, then logs its
name and kernel tid; the log is written to argv[1] at the end. Runs on CPython 2.7 and
3.6+ (the kernel tid from gettid where threading.get_native_id, 3.8, is missing).
"""

# This file must stay valid Python 2.7.
# ruff: noqa: UP031

import ctypes
import sys
import threading
import time

log = []
monotonic = getattr(time, "monotonic", time.time)
libc = ctypes.CDLL(None, use_errno=True)


def native_id():
    get = getattr(threading, "get_native_id", None)
    return get() if get else libc.syscall(186)  # SYS_gettid, x86_64


def work():
    end = monotonic() + 0.05
    x = 0
    while monotonic() < end:
        x += 1
    log.append((threading.current_thread().name, native_id()))


for wave in range(10):
    threads = [threading.Thread(target=work, name="wave%d-%d" % (wave, j)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
with open(sys.argv[1], "w") as f:
    f.writelines("%s %d\n" % (name, tid) for name, tid in log)

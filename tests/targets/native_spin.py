"""--native target: ``caller`` calls the test-built C extension's ``flamekit_spin_in_c``,
which burns CPU in C and calls ``callback`` (Python) after every burst, for SECONDS
(argv[2]). The extension is imported after a short sleep, so a recording started with
the program sees it loaded mid-recording (a dlopen). At the end it prints the share of
its thread CPU time spent in Python callbacks (the rest is C): the truth to compare with.
Usage: native_spin.py EXT_DIR SECONDS
"""

import random
import sys
import time

sys.path.insert(0, sys.argv[1])
in_callback = [0.0]


def callback():
    t0 = time.thread_time()
    t = time.perf_counter()
    span = random.uniform(0.0001, 0.001)  # random, as the C bursts are: no aliasing
    while time.perf_counter() - t < span:
        pass
    in_callback[0] += time.thread_time() - t0


def caller(seconds):
    import spinext

    start = time.thread_time()
    spinext.spin_in_c(callback, seconds)
    return time.thread_time() - start


time.sleep(0.3)
total = caller(float(sys.argv[2]))
print("callback-share %.4f" % (in_callback[0] / total))

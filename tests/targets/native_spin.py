"""--native target: ``caller`` calls the test-built C extension's ``flamekit_spin_in_c``,
which burns CPU in C and calls ``callback`` (Python, which calls ``callback_inner``,
Python too) after every burst, for SECONDS
(argv[2]). The extension is imported after a short sleep, so a recording started with
the program sees it loaded mid-recording (a dlopen). At the end it prints the share of
its time spent in Python callbacks (the rest is C): the truth to compare with. Wall time,
as the recorder samples: the thread never blocks, so where it was preempted on a busy
machine is where the samples of that moment land, on both sides alike.
Usage: native_spin.py EXT_DIR SECONDS
"""

import random
import sys
import time

sys.path.insert(0, sys.argv[1])
in_callback = [0.0]


def callback():
    t0 = time.perf_counter()
    # random, as the C bursts are (no aliasing); random.random is C. The callback calls
    # more Python (callback_inner, where it spins): a merged 3.11+ stack must give the
    # inner evaluation call both frames, however the C entry split the interpreter's
    callback_inner(0.0001 + 0.0009 * random.random())
    in_callback[0] += time.perf_counter() - t0


def callback_inner(span):
    t = time.perf_counter()
    while time.perf_counter() - t < span:
        pass


def caller(seconds):
    import spinext

    start = time.perf_counter()
    spinext.spin_in_c(callback, seconds)
    return time.perf_counter() - start


time.sleep(0.3)
total = caller(float(sys.argv[2]))
print("callback-share %.4f" % (in_callback[0] / total))

"""--native target: ``caller`` calls the test-built C extension's ``flamekit_spin_in_c``,
which burns CPU in C and calls ``callback`` (Python, which calls ``callback_inner``,
Python too) after every burst, for SECONDS
(argv[2]). The extension is imported after a short sleep, so a recording started with
the program sees it loaded mid-recording (a dlopen). At the end it prints the share of
its wall time spent in Python callbacks (the rest is C), and, given LOG, writes there
(JSON) the CLOCK_MONOTONIC instants (time.monotonic_ns, the recorder's clock) of its
transitions: ``import`` (just before it imports the extension), ``c`` [entering the C
function, leaving it] and ``callbacks`` [entering the callback, leaving it, ...]. The log is the truth a test judges each sample against: the
state at the sample's instant. Wall-time shares are not (a pausing recorder stops the
target for each sample, longer in one state than the other, and that stopped time counts
as the state's wall time while it makes one sample).
Usage: native_spin.py EXT_DIR SECONDS [LOG]
"""

import json
import random
import sys
import time

sys.path.insert(0, sys.argv[1])
in_callback = [0.0]
imported = [0]
transitions = []  # entering, leaving the callback: a bound method, cheap to call
mark = transitions.append
now_ns = time.monotonic_ns


def callback():
    mark(now_ns())
    t0 = time.perf_counter()
    # random, as the C bursts are (no aliasing); random.random is C. The callback calls
    # more Python (callback_inner, where it spins): a merged 3.11+ stack must give the
    # inner evaluation call both frames, however the C entry split the interpreter's
    callback_inner(0.0001 + 0.0009 * random.random())
    in_callback[0] += time.perf_counter() - t0
    mark(now_ns())


def callback_inner(span):
    t = time.perf_counter()
    while time.perf_counter() - t < span:
        pass


def caller(seconds):
    imported[0] = now_ns()
    import spinext

    start = time.perf_counter()
    entered = now_ns()
    spinext.spin_in_c(callback, seconds)
    left = now_ns()
    return time.perf_counter() - start, [entered, left]


time.sleep(0.3)
total, in_c = caller(float(sys.argv[2]))
print("callback-share %.4f" % (in_callback[0] / total))
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        json.dump({"import": imported[0], "c": in_c, "callbacks": transitions}, f)

"""Target for tests/test_record_e2e.py: a main loop that prints a growing counter.

    python record_counter.py READY_FILE [EXIT_AFTER_S]

Each round does about 2 ms of work in ``count_round`` -> ``busy`` and prints
``count N`` (flushed), so a test can see the process keep making progress while and
after it is recorded. READY_FILE gets {"pid": ...} once the loop runs. A
KeyboardInterrupt (SIGINT) prints ``counter: KeyboardInterrupt after N rounds`` and exits
with status 0; after EXIT_AFTER_S seconds (if given) the loop ends and the process exits
with status 0.

Runs on CPython 2.7 and 3.6+ (2.7 has neither time.perf_counter nor time.monotonic).
"""

# This file must stay valid Python 2.7.
# ruff: noqa: UP031

import json
import os
import sys
import time

READY_FILE = sys.argv[1]
EXIT_AFTER = float(sys.argv[2]) if len(sys.argv) > 2 else None
clock = getattr(time, "perf_counter", time.time)
monotonic = getattr(time, "monotonic", time.time)


def busy(seconds):
    end = clock() + seconds
    n = 0
    while clock() < end:
        n += 1
    return n


def count_round():
    return busy(0.002)


def main():
    start = monotonic()
    n = 0
    try:
        while EXIT_AFTER is None or monotonic() - start < EXIT_AFTER:
            count_round()
            n += 1
            # one write a line: print writes its pieces apart, and a KeyboardInterrupt
            # between them left "count" without its number and newline
            sys.stdout.write("count %d\n" % n)
            sys.stdout.flush()
            if n == 1:
                with open(READY_FILE + ".tmp", "w") as f:
                    json.dump({"pid": os.getpid()}, f)
                getattr(os, "replace", os.rename)(READY_FILE + ".tmp", READY_FILE)
    except KeyboardInterrupt:
        # on a line of its own even if the interrupt came mid-write
        sys.stdout.write("\ncounter: KeyboardInterrupt after %d rounds\n" % n)
        sys.stdout.flush()


if __name__ == "__main__":
    main()

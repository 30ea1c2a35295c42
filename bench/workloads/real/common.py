"""The protocol every real workload of bench/real.py speaks (CPython 3.8+, stdlib only).

The workload prints ``{"ready": PID}`` once its first unit of work is done (imports and
first-use caches behind it), then works until ``--max-seconds``. Each line the harness
sends on stdin gets ``{"count": N, "t": T}`` back: units completed so far and the
perf_counter time the last one completed. Two such marks give the work rate between two
completions, exact for any unit size, so a coarse unit (one file linted) still measures
a slowdown. EOF on stdin ends the program. The protocol runs on a thread of its own,
blocked in readline: an idle thread, as real servers have.

What the work prints goes to /dev/null: stdout is the harness's channel.
"""

import json
import os
import threading
import time

_LOCK = threading.Lock()
_STATE = (0, 0.0)  # (count, time of the last completion): replaced whole, read whole
_OUT = None
_IN = None


def done(n=1):
    """Count N completed units (thread-safe); the first one makes the workload ready."""
    global _STATE
    with _LOCK:
        first = _STATE[0] == 0
        _STATE = (_STATE[0] + n, time.perf_counter())
        if first:
            _emit({"ready": os.getpid()})
            t = threading.Thread(target=_marks, name="bench-marks")
            t.daemon = True
            t.start()


def _emit(obj):
    _OUT.write(json.dumps(obj) + "\n")
    _OUT.flush()


def _marks():
    for _ in _IN:
        count, t = _STATE
        _emit({"count": count, "t": t})
    _OUT.flush()
    os._exit(0)


def run(step, max_seconds):
    """Call ``step()`` (which calls done(), or lets other threads call it) until
    max_seconds."""
    global _OUT, _IN
    _OUT = os.fdopen(os.dup(1), "w")
    _IN = os.fdopen(os.dup(0))  # a copy: a test runner may point fd 0 elsewhere
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    deadline = time.time() + max_seconds
    while time.time() < deadline:
        step()
    os._exit(0)


def max_seconds_arg(argv):
    """``--max-seconds S`` (default 1800) from argv: the workloads take nothing else
    except what their own scripts parse."""
    if "--max-seconds" in argv:
        return float(argv[argv.index("--max-seconds") + 1])
    return 1800.0


def arg(argv, name, default=None):
    if name in argv:
        return argv[argv.index(name) + 1]
    return default

# -*- coding: utf-8 -*-
"""Target for tests/test_record_e2e.py and tests/test_dump.py: threads parked at known lines.

    python record_known.py READY_FILE [LIFETIME_S]

Every thread parks on one line marked ``# MARK:<name>`` (the tests read the line numbers
from these comments) and stays there until the process ends, so every sample taken after
READY_FILE appears must show exactly the same stack for each thread:

* MainThread: ``main`` -> ``recurse`` 501 frames deep (500 recursive calls), asleep in
  ``time.sleep`` at MARK:bottom (idle);
* "spinner": ``Spinner.run_spin`` -> ``Spinner.spin_inner``, spinning on the one line
  MARK:spin forever (on CPU, the GIL holder: every other thread is blocked);
* "sleeper-ñ": ``sleeper`` -> ``fé_latin`` -> ``函数_cjk`` in record_módulo_ñ.py, asleep at
  MARK:cjk-sleep (idle);
* "ожидание-lock": ``waiter``, blocked acquiring a lock that is never released, at
  MARK:lock (idle).

READY_FILE is written (atomically) once all threads are at their lines: JSON with the
pid, ``ready_ns`` (time.monotonic_ns(), the clock the trace header uses) and each
thread's name, ``threading.get_ident()`` and native thread id. LIFETIME_S seconds
(default 60) after that the main thread returns and the process exits with status 0.

Runs on CPython 2.7 and 3.6+. 2.7 has no non-ASCII identifiers (PEP 3131 is 3.0): there
the sleeper's two functions come from record_py2_names.py, whose code objects carry byte
string names, one UTF-8 (``函数_cjk``) and one Latin-1, not UTF-8 (``f\xe9_latin``).
"""

# This file must stay valid Python 2.7.
# ruff: noqa: UP009, UP031, UP036

import ctypes
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no .pyc of the 2.7 module beside the sources
if sys.version_info[0] >= 3:
    module = __import__("record_módulo_ñ")
else:
    import record_py2_names as module

READY_FILE = sys.argv[1]
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
DEPTH = 500
threads = {}  # name -> (ident, native id)
lock = threading.Lock()


# What 2.7 and 3.6 lack: threading.get_native_id (3.8), threading.get_ident (3.3),
# time.monotonic_ns (3.7), os.replace (3.3).
get_ident = getattr(threading, "get_ident", None) or threading._get_ident
libc = ctypes.CDLL(None, use_errno=True)


def native_id():
    get = getattr(threading, "get_native_id", None)
    return get() if get else libc.syscall(186)  # SYS_gettid, x86_64


def monotonic_ns():
    if hasattr(time, "monotonic_ns"):
        return time.monotonic_ns()
    ts = (ctypes.c_long * 2)()
    libc.clock_gettime(1, ts)  # CLOCK_MONOTONIC: the trace header's clock
    return ts[0] * 1000000000 + ts[1]


def note(started):
    t = threading.current_thread()
    threads[t.name] = (get_ident(), native_id())
    started.set()


class Spinner:
    def run_spin(self, started):
        return self.spin_inner(started)  # MARK:spin-call

    def spin_inner(self, started):
        n = 0
        note(started)
        # fmt: off
        while True: n += 1  # MARK:spin # noqa: E701
        # fmt: on


def sleeper(started):
    note(threading.Event())
    return module.ENTRY(3600, started)  # MARK:sleeper-call


def waiter(started):
    note(started)
    lock.acquire()  # MARK:lock


def recurse(n):
    if n > 0:
        return recurse(n - 1)  # MARK:recurse
    ready()
    time.sleep(LIFETIME)  # MARK:bottom


def ready():
    t = threading.current_thread()
    threads[t.name] = (get_ident(), native_id())
    time.sleep(0.05)  # let every thread reach its line
    doc = {
        "pid": os.getpid(),
        "ready_ns": monotonic_ns(),
        "threads": [{"name": k, "ident": v[0], "native_id": v[1]} for k, v in threads.items()],
    }
    with open(READY_FILE + ".tmp", "wb") as f:
        f.write(json.dumps(doc).encode("ascii"))  # 2.7: names are UTF-8 byte strings
    getattr(os, "replace", os.rename)(READY_FILE + ".tmp", READY_FILE)


def main():
    lock.acquire()
    events = []
    for name, run in (
        ("spinner", Spinner().run_spin),
        ("sleeper-ñ", sleeper),
        ("ожидание-lock", waiter),
    ):
        started = threading.Event()
        events.append(started)
        t = threading.Thread(target=run, args=(started,), name=name)
        t.daemon = True
        t.start()
    for e in events:
        e.wait(60)
    recurse(DEPTH)  # MARK:main-call


if __name__ == "__main__":
    main()  # MARK:module-call

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
"""

import json
import os
import sys
import threading
import time

import record_módulo_ñ

READY_FILE = sys.argv[1]
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
DEPTH = 500
threads = {}  # name -> (ident, native id)
lock = threading.Lock()


def note(started):
    t = threading.current_thread()
    threads[t.name] = (threading.get_ident(), threading.get_native_id())
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
    return record_módulo_ñ.fé_latin(3600, started)  # MARK:sleeper-call


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
    threads[t.name] = (threading.get_ident(), threading.get_native_id())
    time.sleep(0.05)  # let every thread reach its line
    doc = {
        "pid": os.getpid(),
        "ready_ns": time.monotonic_ns(),
        "threads": [{"name": k, "ident": v[0], "native_id": v[1]} for k, v in threads.items()],
    }
    with open(READY_FILE + ".tmp", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    os.replace(READY_FILE + ".tmp", READY_FILE)


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
        threading.Thread(target=run, args=(started,), name=name, daemon=True).start()
    for e in events:
        e.wait(60)
    recurse(DEPTH)  # MARK:main-call


if __name__ == "__main__":
    main()  # MARK:module-call

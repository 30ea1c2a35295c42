# -*- coding: utf-8 -*-
"""A target for tests/test_record_walker.py: threads parked at known places.

Prints one JSON line when every thread is in place, then waits until stdin closes.
Threads: a sleeper three calls deep, a spinner holding the GIL, a thread in functions
with non-ASCII names, a 500-deep recursion, and the main thread. With argument
"bench N": only the main thread, N calls deep, spinning (or "bench-sleep N": sleeping).
Runs on CPython 2.7 and 3.6+ (2.7 has no non-ASCII identifiers: no "unicode" thread).
"""

# ruff: noqa: UP004, UP009, UP010, UP036, B009 -- this file also runs on CPython 2.7

from __future__ import print_function  # MARK:first-statement

import ctypes
import importlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.setrecursionlimit(5000)


def level1(ready):
    return level2(ready)


def level2(ready):
    return level3(ready)


def level3(ready):
    ready.set()
    time.sleep(1000)  # MARK:sleeper-sleep


def spin(ready):
    ready.set()
    x = 0
    while True:  # MARK:spin-loop
        x += 1  # MARK:spin-body


def recurse(n, ready):
    if n > 1:
        return recurse(n - 1, ready)  # MARK:recurse-call
    ready.set()
    time.sleep(1000)  # MARK:recurse-sleep


def bench_spin(n):
    if n > 1:
        return bench_spin(n - 1)  # MARK:bench-call
    x = 0
    while True:
        x += 1


def bench_sleep(n):
    if n > 1:
        return bench_sleep(n - 1)
    time.sleep(1000)


def gettid():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    return ctypes.CDLL(None).syscall(186)  # SYS_gettid on x86_64 (2.7, 3.6, 3.7)


class Ready(object):
    """An Event whose set() also notes the kernel tid of the thread that set it."""

    def __init__(self):
        self.event = threading.Event()
        self.tid = None

    def set(self):
        self.tid = gettid()
        self.event.set()


def start(name, target, *args):
    ready = Ready()
    t = threading.Thread(target=target, args=args + (ready,), name=name)
    t.daemon = True
    t.start()
    ready.event.wait()
    return t, ready.tid


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main_idle():
    sys.stdin.readline()  # MARK:main-wait


def churn_worker(seed):
    import random

    rnd = random.Random(seed)

    def dive(n):
        if n > 0:
            return dive(n - 1)
        return sum(range(rnd.randint(1, 50)))

    while True:
        dive(rnd.randint(0, 80))
        g = (i for i in range(3))  # generator frames outside the data stack
        for _ in g:
            dive(rnd.randint(0, 5))


def churn_spawner():
    while True:
        t = threading.Thread(target=lambda: sum(range(1000)))
        t.start()
        t.join()


def churn():
    """Threads that call, return and come and go as fast as they can (torn reads)."""
    workers = [threading.Thread(target=churn_worker, args=(seed,)) for seed in range(3)]
    for t in workers + [threading.Thread(target=churn_spawner)]:
        t.daemon = True
        t.start()
    emit({"pid": os.getpid()})
    sys.stdin.readline()


def reuse():
    """Free a code object and allocate another at the same address (for fingerprints)."""
    ns = {}
    first = compile("def alpha():\n    return 1\n", "alpha_file.py", "exec")
    code = [c for c in first.co_consts if hasattr(c, "co_code")][0]
    address = id(code)
    emit({"pid": os.getpid(), "address": address})
    sys.stdin.readline()
    del first, code
    for i in range(100000):
        other = compile("def gamma():\n    return 1\n", "other" + str(i) + ".py", "exec")
        found = [c for c in other.co_consts if hasattr(c, "co_code")][0]
        if id(found) == address:
            break
    else:
        found = None
    ns["found"] = found
    emit({"reused": found is not None})
    sys.stdin.readline()


def legacy_string():
    """A function whose name and file are str-subclass instances: not compact strings."""

    class S(str):
        pass

    def parked(ready):
        ready.set()
        time.sleep(1000)

    parked.__code__ = (
        parked.__code__.replace(
            co_name=S("sub_fé_函数"), co_filename=S("/tmp/sub_文件_𠀀.py"), co_qualname=S("q_ß")
        )
        if sys.version_info >= (3, 11)
        else parked.__code__.replace(co_name=S("sub_fé_函数"), co_filename=S("/tmp/sub_文件_𠀀.py"))
    )
    t, tid = start("legacy", parked)
    emit({"pid": os.getpid(), "thread": t.ident, "code": id(parked.__code__)})
    sys.stdin.readline()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "legacy-string":
        return legacy_string()
    if len(sys.argv) > 1 and sys.argv[1] == "churn":
        return churn()
    if len(sys.argv) > 1 and sys.argv[1] == "reuse":
        return reuse()
    if len(sys.argv) > 2 and sys.argv[1] in ("bench", "bench-sleep"):
        emit({"pid": os.getpid()})
        (bench_spin if sys.argv[1] == "bench" else bench_sleep)(int(sys.argv[2]))
        return
    threads = [start("sleeper", level1)]
    if sys.version_info[0] >= 3:
        unicode_module = importlib.import_module("módulo_函数")
        threads.append(start("unicode", getattr(unicode_module, "fé_latin")))
    threads.append(start("deep", recurse, 500))
    threads.append(start("spinner", spin))
    info = {
        "pid": os.getpid(),
        "main": threading.current_thread().ident,
        "main_native": gettid(),
        "threads": dict((t.name, [t.ident, tid]) for t, tid in threads),
    }
    time.sleep(0.05)  # let every thread get from ready.set() into its blocking call
    emit(info)
    main_idle()


if __name__ == "__main__":
    main()

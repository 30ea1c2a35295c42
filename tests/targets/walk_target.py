"""A target for tests/test_record_walker.py: threads parked at known places.

Prints one JSON line when every thread is in place, then waits until stdin closes.
Threads: a sleeper three calls deep, a spinner holding the GIL, a thread in functions
with non-ASCII names, a 500-deep recursion, and the main thread. With argument
"bench N": only the main thread, N calls deep, spinning (or "bench-sleep N": sleeping).
"""

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


def start(name, target, *args):
    ready = threading.Event()
    t = threading.Thread(target=target, args=args + (ready,), name=name)
    t.daemon = True
    t.start()
    ready.wait()
    return t


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
    for seed in range(3):
        threading.Thread(target=churn_worker, args=(seed,), daemon=True).start()
    threading.Thread(target=churn_spawner, daemon=True).start()
    print(json.dumps({"pid": os.getpid()}), flush=True)
    sys.stdin.readline()


def reuse():
    """Free a code object and allocate another at the same address (for fingerprints)."""
    ns = {}
    first = compile("def alpha():\n    return 1\n", "alpha_file.py", "exec")
    code = [c for c in first.co_consts if hasattr(c, "co_code")][0]
    address = id(code)
    print(json.dumps({"pid": os.getpid(), "address": address}), flush=True)
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
    print(json.dumps({"reused": found is not None}), flush=True)
    sys.stdin.readline()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "churn":
        return churn()
    if len(sys.argv) > 1 and sys.argv[1] == "reuse":
        return reuse()
    if len(sys.argv) > 2 and sys.argv[1] in ("bench", "bench-sleep"):
        print(json.dumps({"pid": os.getpid()}), flush=True)
        (bench_spin if sys.argv[1] == "bench" else bench_sleep)(int(sys.argv[2]))
        return
    import módulo_函数

    threads = [
        start("sleeper", level1),
        start("unicode", módulo_函数.fé_latin),
        start("deep", recurse, 500),
        start("spinner", spin),
    ]
    info = {
        "pid": os.getpid(),
        "main": threading.get_ident(),
        "main_native": threading.get_native_id(),
        "threads": {t.name: [t.ident, t.native_id] for t in threads},
    }
    time.sleep(0.05)  # let every thread get from ready.set() into its blocking call
    print(json.dumps(info), flush=True)
    main_idle()


if __name__ == "__main__":
    main()

"""Target for tests/test_reliability_*.py: a Python program that misbehaves on purpose.

Usage: rel_target.py MODE STATE [ARGS...]. Prints "ready PID" once running. STATE is a
file the program rewrites in place with its progress count (so a test can tell "running"
from "stopped"). Modes:

- ``spin STATE [THREADS]``: the main thread and THREADS workers loop through a few nested
  calls, forever (until killed).
- ``exit STATE SECONDS CODE``: spin for SECONDS, then exit with CODE.
- ``exec STATE SECONDS PROGRAM ARGS...``: spin for SECONDS, then ``execv`` PROGRAM (from a
  second thread, the harder case: the kernel moves that thread to the process id).
- ``fork STATE SECONDS N``: spin and fork N children over SECONDS; each child runs Python
  for a while, reports its TracerPid (a fork must not inherit the recorder) and exits
  with its index; the parent reaps every child, checks the codes, prints one JSON line.
- ``threads STATE SECONDS [AT_LEAST]``: start and end hundreds of short threads a second,
  each doing a little work in Python, for SECONDS and until AT_LEAST were started (30 s
  at most); prints one JSON line (threads started, all correct). Writes STATE.lives: one
  line a thread, its kernel tid and CLOCK_MONOTONIC ns just before ``start()`` and just
  after ``join()`` (every moment the thread can have been seen lies between).
- ``deep STATE [SECONDS]``: one thread recursing through several functions to a depth
  that changes all the time (0-400); several threads doing so when THREADS is given as
  the optional fourth argument. Forever, or SECONDS.
- ``sleepy STATE``: mostly asleep (a few wake-ups a second), forever.
"""

import json
import os
import random
import sys
import threading
import time

mode, state = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
fd = os.open(state, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
progress = [0]


def publish() -> None:
    os.pwrite(fd, b"%20d\n" % progress[0], 0)


def inner(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def middle(n: int) -> int:
    return inner(n) + inner(n // 2)


def outer(n: int) -> int:
    return middle(n)


def spin_for(seconds: float) -> None:
    end = None if seconds <= 0 else time.monotonic() + seconds
    while end is None or time.monotonic() < end:
        outer(2000)
        progress[0] += 1
        publish()


def worker() -> None:
    while True:
        outer(1000)
        progress[0] += 1


def ready() -> None:
    publish()
    print("ready", os.getpid(), flush=True)


def tracer_pid() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


def do_fork(seconds: float, n: int) -> None:
    ready()
    kids = {}
    rfd, wfd = os.pipe()
    start = time.monotonic()
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            spin_for(0.05 + 0.1 * random.random())
            os.write(wfd, b"%d %d\n" % (i, tracer_pid()))
            os._exit(i % 100)
        kids[pid] = i
        left = start + seconds * (i + 1) / n - time.monotonic()
        if left > 0:  # spin_for(0) spins forever: behind schedule, fork the next at once
            spin_for(left)
    os.close(wfd)
    bad = []
    for _ in range(n):
        pid, status = os.wait()
        i = kids.pop(pid)
        if os.waitstatus_to_exitcode(status) != i % 100:
            bad.append((i, status))
    tracers = {}
    with os.fdopen(rfd) as r:
        for line in r:
            i, t = map(int, line.split())
            tracers[i] = t
    print(json.dumps({"forked": n, "bad": bad, "tracers": sorted(set(tracers.values()))}))
    sys.stdout.flush()


def do_threads(seconds: float, at_least: int = 0) -> None:
    results = []
    lock = threading.Lock()

    def work(i: int) -> None:
        x = inner(i % 200)
        with lock:
            results.append(i + x - sum(range(i % 200)))

    ready()
    n = 0
    start = time.monotonic()
    end = start + seconds
    give_up = start + max(seconds, 30.0)
    lives = []
    while time.monotonic() < end or (n < at_least and time.monotonic() < give_up):
        batch = [
            threading.Thread(target=work, args=(n + k,), name=f"short-{n + k}") for k in range(8)
        ]
        born = time.monotonic_ns()
        for t in batch:
            t.start()
        for t in batch:
            t.join()
        gone = time.monotonic_ns()
        lives.extend(f"{t.native_id} {born} {gone}\n" for t in batch)
        n += len(batch)
        progress[0] = n
        publish()
    ok = len(results) == n and sum(results) == n * (n - 1) // 2
    with open(state + ".lives", "w") as f:
        f.writelines(lives)
    print(json.dumps({"threads": n, "ok": ok, "elapsed": seconds}), flush=True)


def deep_a(n: int) -> int:
    return deep_b(n - 1) + 1 if n > 0 else leaf(0)


def deep_b(n: int) -> int:
    return deep_c(n - 1) + 1 if n > 0 else leaf(1)


def deep_c(n: int) -> int:
    return deep_a(n - 1) + 1 if n > 0 else leaf(2)


def leaf(k: int) -> int:
    return inner(30 + k)


def churn(seed: int, end: float | None) -> None:
    rng = random.Random(seed)
    while end is None or time.monotonic() < end:
        deep_a(rng.randrange(400))
        progress[0] += 1


def do_deep(seconds: float, nthreads: int) -> None:
    sys.setrecursionlimit(5000)
    end = time.monotonic() + seconds if seconds > 0 else None
    for k in range(nthreads - 1):
        threading.Thread(target=churn, args=(k + 1, end), daemon=True).start()
    ready()
    rng = random.Random(0)
    while end is None or time.monotonic() < end:
        deep_a(rng.randrange(400))
        progress[0] += 1
        publish()


def do_exec(seconds: float, program: list) -> None:
    def later() -> None:
        spin_for(seconds)
        os.execv(program[0], program)

    threading.Thread(target=later).start()
    ready()
    while True:
        time.sleep(0.001)


if mode == "spin":
    for _ in range(int(args[0]) if args else 0):
        threading.Thread(target=worker, daemon=True).start()
    ready()
    spin_for(0)
elif mode == "exit":
    ready()
    spin_for(float(args[0]))
    sys.exit(int(args[1]))
elif mode == "exec":
    do_exec(float(args[0]), args[1:])
elif mode == "fork":
    do_fork(float(args[0]), int(args[1]))
elif mode == "threads":
    do_threads(float(args[0]), int(args[1]) if len(args) > 1 else 0)
elif mode == "deep":
    do_deep(float(args[0]) if args else 0.0, int(args[1]) if len(args) > 1 else 1)
elif mode == "sleepy":
    ready()
    while True:
        time.sleep(0.2)
        progress[0] += 1
        publish()
else:
    sys.exit(f"rel_target.py: unknown mode {mode!r}")

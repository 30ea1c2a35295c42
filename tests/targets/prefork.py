"""Target for tests/test_record_subprocesses.py: a bare os.fork() prefork server.

    python prefork.py WORKERS SECONDS REPORT

The master forks WORKERS workers and respawns any that dies, until SECONDS have passed;
then it stops them and exits. Each worker spins in ``serve``, its slot's share of the
work set by its slot number (slot n works 2(n+1) ms and sleeps 2(WORKERS-n) ms a
round), and at its end (SIGTERM; not when killed) writes {"pid", "slot", "work_s"} to
REPORT: the time it spent working, on a CPU or waiting for one (a sampler sees both as
running), the truth a recording's shares are checked against. The master writes {"master": PID} once all
workers run, and {"respawned": PID} for each worker it replaces.
"""

import json
import os
import signal
import sys
import time

WORKERS = int(sys.argv[1])
SECONDS = float(sys.argv[2])
REPORT = sys.argv[3]


def note(doc):
    with open(REPORT, "a") as f:
        f.write(json.dumps(doc) + "\n")


def serve(slot):
    worked = [0.0]

    def stop(signo, frame):
        note({"pid": os.getpid(), "slot": slot, "work_s": worked[0]})
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    master = os.getppid()
    while os.getppid() == master:  # a worker whose master is gone (a test killed it) ends
        t0 = time.perf_counter()
        end = t0 + 0.002 * (slot + 1)
        while time.perf_counter() < end:
            sum(range(200))
        worked[0] += time.perf_counter() - t0
        time.sleep(0.002 * (WORKERS - slot))  # the slots' shares differ


def spawn(slot):
    pid = os.fork()
    if pid == 0:
        try:
            serve(slot)
        finally:
            os._exit(0)
    return pid


def main():
    slots = {spawn(n): n for n in range(WORKERS)}
    note({"master": os.getpid(), "workers": sorted(slots)})
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid and pid in slots:
            slot = slots.pop(pid)
            new = spawn(slot)
            slots[new] = slot
            note({"respawned": new, "slot": slot, "died": pid})
        time.sleep(0.01)
    for pid in slots:
        os.kill(pid, signal.SIGTERM)
    for pid in slots:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()

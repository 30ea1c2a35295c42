"""Target for tests/test_record_subprocesses.py: a Python process tree, made one way.

    python tree.py HOW SECONDS REPORT [OTHER_PYTHON]

HOW is how the workers start: ``fork``, ``spawn`` or ``forkserver`` (multiprocessing),
``pool`` (concurrent.futures.ProcessPoolExecutor), ``subprocess``
(subprocess.run([sys.executable, ...])), ``shell`` (a shell that runs Python: the
child execs into Python), ``other`` (OTHER_PYTHON, another CPython version, started by
this one), ``exec-away`` (a worker that runs Python, then execs ``sleep``), or ``grand``
(a child that starts a grandchild). Each worker spins in ``work`` for SECONDS and the
parent waits. REPORT gets a JSON line per worker, {"pid": ..., "role": ...}, written by
the worker itself, then {"done": true} from the parent.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import time


def work(role, seconds, report):
    with open(report, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "role": role}) + "\n")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(range(200))
    return n


def child_code(role, seconds, report):
    return (
        "import json, os, time\n"
        f"with open({report!r}, 'a') as f:\n"
        f"    f.write(json.dumps({{'pid': os.getpid(), 'role': {role!r}}}) + '\\n')\n"
        "def work():\n"
        f"    end = time.monotonic() + {seconds}\n"
        "    while time.monotonic() < end:\n"
        "        sum(range(200))\n"
        "work()\n"
    )


def grand(seconds, report):
    """A child that starts a grandchild and works beside it."""
    subprocess.Popen([sys.executable, "-c", child_code("grandchild", seconds, report)])
    work("child", seconds, report)


def main():
    how, seconds, report = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    if how in ("fork", "spawn", "forkserver"):
        ctx = multiprocessing.get_context(how)
        procs = [ctx.Process(target=work, args=(f"worker{i}", seconds, report)) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    elif how == "pool":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as pool:
            list(pool.map(work, ["worker0", "worker1"], [seconds] * 2, [report] * 2))
    elif how == "subprocess":
        subprocess.run([sys.executable, "-c", child_code("child", seconds, report)], check=True)
    elif how == "shell":
        code = child_code("child", seconds, report)
        subprocess.run(
            ["sh", "-c", 'sleep 0.2; exec "$0" -c "$1"', sys.executable, code], check=True
        )
    elif how == "other":
        subprocess.run([sys.argv[4], "-c", child_code("other", seconds, report)], check=True)
    elif how == "exec-away":
        code = child_code("child", seconds, report) + "os.execvp('sleep', ['sleep', '0.5'])\n"
        subprocess.run([sys.executable, "-c", code], check=True)
    elif how == "grand":
        p = multiprocessing.get_context("fork").Process(target=grand, args=(seconds, report))
        p.start()
        p.join()
    else:
        raise SystemExit(f"unknown HOW {how}")
    with open(report, "a") as f:
        f.write(json.dumps({"done": True, "pid": os.getpid()}) + "\n")


if __name__ == "__main__":
    main()

"""Target for tests/test_pause.py: runs short subprocesses back to back from two threads.

Usage: pause_spawn.py SECONDS. CPython starts them with vfork, so the spawning thread
sits in the kernel until the child execs and cannot stop at once when paused. Prints
"ready", then "runs N" and exits 0.
"""

import subprocess
import sys
import threading
import time

seconds = float(sys.argv[1])
runs = [0, 0]


def spawn(i: int) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        subprocess.run(["true"], check=True)
        runs[i] += 1


print("ready", flush=True)
threads = [threading.Thread(target=spawn, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("runs", sum(runs), flush=True)

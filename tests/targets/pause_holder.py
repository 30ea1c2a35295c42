"""A second recorder for tests/test_pause.py: seize a process and keep it.

Usage: pause_holder.py PID MODE, MODE "paused" (pause once, then sleep holding every
thread stopped) or "seized" (serve events forever). Prints "held", then "complete" (or
"incomplete" if a thread did not stop), so the test can SIGKILL this process while it
holds the target, or check that a second tracer is refused.
"""

import sys
import time

from flamekit.record.proc.pause import Pauser

pid, mode = int(sys.argv[1]), sys.argv[2]
pauser = Pauser(pid)
if mode == "paused":
    result = pauser.pause(timeout=5.0)
    print("held", flush=True)
    print("complete" if result.complete else "incomplete", flush=True)
    while True:
        time.sleep(60)
print("held", flush=True)
print("complete", flush=True)
while True:
    pauser.service(1.0)

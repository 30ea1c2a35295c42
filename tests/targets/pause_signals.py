"""Target for tests/test_pause.py: lives on signals while being paused from outside.

Usage: pause_signals.py STATE_FILE SECONDS CHILDREN [ALARM_INTERVAL]
- SIGALRM from an interval timer every ALARM_INTERVAL seconds (default 0.01; 0: none),
  counted;
- CHILDREN short-lived children forked over the run, reaped only from the SIGCHLD
  handler (a swallowed SIGCHLD leaves a zombie and a short count);
- SIGUSR1 from outside, counted.
The main loop counts its iterations. STATE_FILE is rewritten with
"ticks alarms usr1 reaped" every loop, so the test can watch progress and handlers.
After SECONDS (of its own monotonic clock) it waits up to 5 s for the last children to
be reaped, prints one JSON line with the counts and exits 0.
"""

import json
import os
import signal
import sys
import time

path, seconds, children = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
alarm_every = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
counts = {"alarms": 0, "usr1": 0, "reaped": 0, "forked": 0, "ticks": 0}


def on_alarm(signum, frame):
    counts["alarms"] += 1


def on_usr1(signum, frame):
    counts["usr1"] += 1


def on_chld(signum, frame):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        counts["reaped"] += 1


signal.signal(signal.SIGALRM, on_alarm)
signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGCHLD, on_chld)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)


def publish():
    line = f"{counts['ticks']} {counts['alarms']} {counts['usr1']} {counts['reaped']}"
    os.pwrite(fd, line.encode().ljust(64) + b"\n", 0)


start = time.monotonic()
if alarm_every:
    signal.setitimer(signal.ITIMER_REAL, alarm_every, alarm_every)
publish()
print("ready", flush=True)
next_fork = start
while time.monotonic() - start < seconds:
    counts["ticks"] += 1
    now = time.monotonic()
    if counts["forked"] < children and now >= next_fork:
        if os.fork() == 0:
            os._exit(0)
        counts["forked"] += 1
        next_fork = now + seconds / children / 2
    publish()
    time.sleep(0.0005)
elapsed = time.monotonic() - start
signal.setitimer(signal.ITIMER_REAL, 0, 0)
give_up = time.monotonic() + 5
while counts["reaped"] < counts["forked"] and time.monotonic() < give_up:
    time.sleep(0.01)
publish()
counts["elapsed"] = elapsed
print(json.dumps(counts), flush=True)

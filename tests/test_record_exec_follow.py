"""While the recorder waits for an exec'd program to become a Python it can open, the
target must keep running: a stop it makes meanwhile (our PTRACE_INTERRUPT reaching the
exec'ing thread) has to be serviced by the ticks themselves, since a try to open the new
program takes longer than a period and the loop then never waits between ticks.

(The end-to-end case, a thread exec'ing Python again under a 1000 Hz recording, is in
tests/test_reliability_target.py; it missed the new program in a quarter of the runs.)
"""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest

from flamekit.errors import TargetError
from flamekit.record import sampler, session
from flamekit.record.proc.pause import Pauser


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks


def test_a_stop_while_following_an_exec_is_serviced(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        target = session.attach(proc.pid, launched=proc)
        rec = sampler.Recorder(
            target, io.BytesIO(), sampler.RecordOptions(rate_hz=1000), launched=proc
        )

        def not_python_yet(pid: int):
            raise TargetError(f"pid {pid} is not a CPython process (yet)")

        monkeypatch.setattr(sampler, "open_target", not_python_yet)
        with Pauser(proc.pid) as pauser:
            rec.root.pauser = pauser
            rec._exec_seen(rec.root)  # as after an exec event
            rec.root.exec_deadline = time.monotonic() + 10
            pauser._interrupt(pauser._threads[proc.pid])  # a stop we have not seen yet
            time.sleep(0.05)
            before = cpu_s(proc.pid)
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                assert rec._tick() is None  # still waiting for the new program
                time.sleep(0.001)
            ran = cpu_s(proc.pid) - before
        # Left stopped, it runs ~0 s; a loaded 2-core machine gave it 0.42 s once (a CI-like
        # run with two more spinners beside it), so the bound is well under that.
        assert ran > 0.2, f"the target ran {ran:.2f} s of 1 s: left stopped by the recorder"
    finally:
        proc.kill()
        proc.wait()

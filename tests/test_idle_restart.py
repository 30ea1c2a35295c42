"""A thread our pause took out of a blocking call and caught back in user space on the
instruction that restarts the call is blocked, not running (flamekit/record/proc/restart.py).

That moment is a race a busy machine wins about once in 20,000 pauses, so the test makes
it the way the kernel does: it stops a thread blocked on a lock (stopped inside its futex
call), rewinds its registers as the kernel's restart does (rip back onto ``syscall``,
rax the call's number again), asks, and puts the registers back before letting it go."""

from __future__ import annotations

import subprocess
import time

import pytest
from ptrace.binding.func import ptrace_getregs, ptrace_setregs
from pythons import recordable

from flamekit.record.proc.idle import ThreadStates
from flamekit.record.proc.memory import ProcessMemory
from flamekit.record.proc.pause import Pauser
from flamekit.record.proc.restart import SUPPORTED, SYSCALL, about_to_restart

TARGET = """\
import threading
lock = threading.Lock()
lock.acquire()
def spin():
    while True:
        pass
waiter = threading.Thread(target=lock.acquire, daemon=True)
spinner = threading.Thread(target=spin, daemon=True)
waiter.start()
spinner.start()
print(waiter.native_id, spinner.native_id, flush=True)
waiter.join()
"""

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="the restart check is x86-64's")


def test_a_thread_on_its_calls_restart_is_told_from_one_in_its_code() -> None:
    python = recordable()[-1].path  # any interpreter: the lock wait is glibc's futex
    proc = subprocess.Popen([python, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    pauser = None
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        waiter, spinner = map(int, line.split())
        states = ThreadStates(proc.pid)
        memory = ProcessMemory(proc.pid)
        pauser = Pauser(proc.pid)
        # Until the waiter is stopped inside its call and the spinner in its code (not
        # waiting for the GIL the main thread takes on its way to the join).
        for _ in range(500):
            pauser.pause()
            if states.in_syscall(waiter) is True and states.in_syscall(spinner) is False:
                break
            pauser.resume()
            time.sleep(0.01)
        else:
            pytest.fail("the waiter was never stopped in its call with the spinner in its code")
        # Inside its call: rip is past the instruction. Spinning: rip is in its code.
        assert not about_to_restart(waiter, memory)
        assert not about_to_restart(spinner, memory)
        regs = ptrace_getregs(waiter)
        kept = (regs.rip, regs.rax)
        assert memory.read(regs.rip - len(SYSCALL), len(SYSCALL)) == SYSCALL
        regs.rip -= len(SYSCALL)
        regs.rax = regs.orig_rax  # what the kernel's restart does
        ptrace_setregs(waiter, regs)
        try:
            assert about_to_restart(waiter, memory)
        finally:
            regs.rip, regs.rax = kept
            ptrace_setregs(waiter, regs)
        assert not about_to_restart(waiter, memory)
        pauser.resume()
        pauser.close()
        pauser = None
        assert proc.poll() is None, "the target did not survive the pause"
    finally:
        if pauser is not None:
            pauser.close()
        proc.kill()
        proc.wait()

"""Whether a thread our pause stopped in its own code is only about to enter again the
system call that pause took it out of.

A thread blocked in a system call that ptrace interrupts leaves the call. Once resumed,
the kernel rewinds its instruction pointer onto the ``syscall`` instruction and puts the
call's number back in ``rax``, and the call starts again. A busy machine can stop it
right there, back in user space before that instruction runs: /proc/TID/syscall then
says "in no call" (-1), and the thread would be sampled as running while it waits. It
happened to the 3.9 lock waiter of tests/targets/record_known.py in a CI run; here, 1 of
20,000 interrupt-and-resume cycles of a thread blocked on a lock, under three CPU hogs,
was caught so: rip on ``0f 05``, rax 202 (futex).

x86-64 only (elsewhere the answer is always no, as before this check existed). It costs
a PTRACE_GETREGS and a 2-byte read, and is asked only of threads that were blocked at the
last sample and are runnable now (see RunSampler.tick).
"""

from __future__ import annotations

import platform

from ptrace import PtraceError
from ptrace.binding.func import ptrace_getregs

from flamekit.errors import TargetError
from flamekit.record.proc.memory import ProcessMemory

#: The x86-64 ``syscall`` instruction.
SYSCALL = b"\x0f\x05"

#: System call numbers are below this (x86-64 has about 460); rax holds one at a restart.
MAX_SYSCALL = 1024

SUPPORTED = platform.machine() == "x86_64"


def about_to_restart(tid: int, memory: ProcessMemory) -> bool:
    """True if the stopped thread ``tid`` (ours: traced and stopped by our pause) stands on
    a ``syscall`` instruction with a call number in rax: the kernel's restart of the call
    it was blocked in. False if not, or if its registers or code cannot be read."""
    if not SUPPORTED:
        return False
    try:
        regs = ptrace_getregs(tid)
    except (PtraceError, OSError):
        return False
    if not 0 <= regs.rax < MAX_SYSCALL:
        return False
    try:
        return memory.read(regs.rip, len(SYSCALL)) == SYSCALL
    except TargetError:  # unreadable, or the process gone: the walk next finds that out
        return False

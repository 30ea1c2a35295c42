"""A stopped thread's registers: where its native stack starts.

Only the three an unwinder needs: the instruction pointer, the stack pointer and the
frame pointer. The thread must be in a ptrace-stop of ours (the pauser holds it);
``PTRACE_GETREGS`` of a running thread fails with ESRCH.
"""

from __future__ import annotations

import ctypes
import platform

from ptrace import PtraceError
from ptrace.binding.func import ptrace as _ptrace

from flamekit.errors import TargetError

PTRACE_GETREGS = 12
#: struct user_regs_struct (x86-64): 27 words; rbp is the 5th, rip the 17th, rsp the 20th.
_WORDS = 27
_RBP, _RIP, _RSP = 4, 16, 19


class UnsupportedMachine(TargetError):
    """Native stacks are read on x86-64 only."""


def check_machine() -> None:
    """Raise :class:`UnsupportedMachine` unless native stacks can be read here."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        raise UnsupportedMachine(
            f"native stacks (--native) are supported on x86-64 only, not on {machine}"
        )


class RegisterReader:
    """Reads (rip, rsp, rbp) of stopped threads into one reused buffer."""

    def __init__(self) -> None:
        self._regs = (ctypes.c_uint64 * _WORDS)()
        self._addr = ctypes.addressof(self._regs)

    def read(self, tid: int) -> tuple[int, int, int] | None:
        """(rip, rsp, rbp) of thread ``tid``; None if it is not stopped for us (or gone)."""
        try:
            _ptrace(PTRACE_GETREGS, tid, 0, self._addr)
        except PtraceError:
            return None
        r = self._regs
        return r[_RIP], r[_RSP], r[_RBP]

"""Kernel thread ids for CPython 3.10 and older, whose thread states hold none: read from
glibc's struct pthread, which ``thread_id`` (the pthread_t) points at."""

from __future__ import annotations

import struct

from flamekit.record.proc.memory import ProcessMemory, ReadError
from flamekit.record.proc.pid_namespace import HostTids
from flamekit.record.walk.common import bad_pointer
from flamekit.record.walk.native_tids import NativeTids

#: glibc (x86_64, 2.2x-2.3x): offset of the kernel tid inside struct pthread.
PTHREAD_TID_OFFSET = 0x2D0


class PthreadTids(NativeTids):
    """Each answer is checked against /proc/PID/task once (through ``tids``, which also
    turns a containerized target's id into this side's) and cached per thread."""

    def __init__(self, memory: ProcessMemory, tids: HostTids) -> None:
        super().__init__(tids)
        self.memory = memory

    def _lookup(self, thread_id: int, native: int | None) -> int | None:
        if bad_pointer(thread_id):
            return None
        try:
            (v,) = struct.unpack("<i", self.memory.read(thread_id + PTHREAD_TID_OFFSET, 4))
        except ReadError:
            return None
        return self.tids.host(v) if v > 0 else None

"""Kernel thread ids for CPython 3.10 and older, whose thread states hold none: read from
glibc's struct pthread, which ``thread_id`` (the pthread_t) points at."""

from __future__ import annotations

import os
import struct

from flamekit.record.proc.memory import ProcessMemory, ReadError
from flamekit.record.walk.common import ThreadRow, bad_pointer

#: glibc (x86_64, 2.2x-2.3x): offset of the kernel tid inside struct pthread.
PTHREAD_TID_OFFSET = 0x2D0


class PthreadTids:
    """Each answer is checked against /proc/PID/task once and cached for the life of the
    thread state: keyed by its unique id too, since glibc reuses a dead thread's struct
    pthread (the same pthread_t) and malloc often its thread state's address for the
    next thread (keyed by those two alone, 26 of 40 short threads took a dead one's tid).
    """

    def __init__(self, memory: ProcessMemory, pid: int) -> None:
        self.memory = memory
        self.pid = pid
        self._cache: dict[tuple[int, int, int], int | None] = {}

    def fill(self, threads: list[ThreadRow]) -> list[ThreadRow]:
        """``threads`` with each one's kernel tid (None: it could not be established)."""
        out: list[ThreadRow] = []
        cache = self._cache
        for interp, tstate, thread_id, frame, _, chunk, top, holds, uid in threads:
            key = (tstate, thread_id, uid)
            if key not in cache:
                cache[key] = self._lookup(thread_id)
            out.append((interp, tstate, thread_id, frame, cache[key], chunk, top, holds, uid))
        if len(cache) > 4 * len(threads) + 64:
            live = {(tstate, thread_id, uid) for _, tstate, thread_id, *_, uid in threads}
            for k in [k for k in cache if k not in live]:
                del cache[k]
        return out

    def _lookup(self, pthread: int) -> int | None:
        if bad_pointer(pthread):
            return None
        try:
            (v,) = struct.unpack("<i", self.memory.read(pthread + PTHREAD_TID_OFFSET, 4))
        except ReadError:
            return None
        if v > 0 and os.path.exists(f"/proc/{self.pid}/task/{v}"):
            return v
        return None

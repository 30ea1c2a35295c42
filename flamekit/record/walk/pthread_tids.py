"""Kernel thread ids for CPython 3.10 and older, whose thread states hold none: read from
glibc's struct pthread, which ``thread_id`` (the pthread_t) points at."""

from __future__ import annotations

import struct

from flamekit.record.proc.memory import ProcessMemory, ReadError
from flamekit.record.proc.pid_namespace import HostTids
from flamekit.record.walk.common import ThreadRow, bad_pointer
from flamekit.record.walk.native_tids import NativeTids

#: glibc (x86_64, 2.2x-2.3x): offset of the kernel tid inside struct pthread.
PTHREAD_TID_OFFSET = 0x2D0


class PthreadTids(NativeTids):
    """Each answer is checked against /proc/PID/task once (through ``tids``, which also
    turns a containerized target's id into this side's) and cached per thread.

    2.7 and 3.6 have no unique thread-state id (PyThreadState.id is 3.7's): there
    (``reread``) the tid word of every thread's struct pthread is read again at each walk,
    all in one system call, and is part of the key. The kernel clears it when a thread
    ends and glibc sets it for the next one, so it names the thread now there (13-17 of
    40 short threads recorded on 2.7 and 3.6 keyed without it, the others' samples under
    dead threads' tids).
    """

    def __init__(self, memory: ProcessMemory, tids: HostTids, reread: bool = False) -> None:
        super().__init__(tids)
        self.memory = memory
        self.reread = reread

    def fill(self, threads: list[ThreadRow]) -> list[ThreadRow]:
        if not self.reread:
            return super().fill(threads)
        words = self._tid_words(threads)
        # the word read now stands in the row's tid field: the cache key, and the answer
        rows = [r[:4] + (words[n],) + r[5:] for n, r in enumerate(threads)]
        return super().fill(rows)

    def _tid_words(self, threads: list[ThreadRow]) -> list[int | None]:
        """Each thread's tid word as its struct pthread holds it now (None: unreadable)."""
        addrs = [0 if bad_pointer(r[2]) else r[2] + PTHREAD_TID_OFFSET for r in threads]
        words: list[int | None] = [None] * len(addrs)
        readable = [n for n, a in enumerate(addrs) if a]
        data, k = self.memory.read_uniform([addrs[n] for n in readable], 4)
        for j, (v,) in enumerate(struct.iter_unpack("<i", data[: 4 * k])):
            words[readable[j]] = v
        return words

    def _lookup(self, thread_id: int, native: int | None) -> int | None:
        if self.reread:  # ``native``: the word just read (None: unreadable now)
            return self.tids.host(native) if native is not None and native > 0 else None
        if bad_pointer(thread_id):
            return None
        try:
            (v,) = struct.unpack("<i", self.memory.read(thread_id + PTHREAD_TID_OFFSET, 4))
        except ReadError:
            return None
        return self.tids.host(v) if v > 0 else None

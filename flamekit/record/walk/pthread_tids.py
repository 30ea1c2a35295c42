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

    2.7 and 3.6 have no such id (PyThreadState.id is 3.7's): there the tid word of every
    thread's struct pthread is read again at each walk, all in one system call, and is
    part of the key. The kernel clears it when a thread ends and glibc sets it for the
    next one, so it names the thread now there (13-17 of 40 short threads recorded on 2.7
    and 3.6 keyed without it, the others' samples under dead threads' tids).
    """

    def __init__(self, memory: ProcessMemory, pid: int, reread: bool = False) -> None:
        """``reread``: the layout has no unique thread-state id (2.7, 3.6)."""
        self.memory = memory
        self.pid = pid
        self.reread = reread
        self._cache: dict[tuple[int, int, int], int | None] = {}

    def fill(self, threads: list[ThreadRow]) -> list[ThreadRow]:
        """``threads`` with each one's kernel tid (None: it could not be established)."""
        out: list[ThreadRow] = []
        cache = self._cache
        words = self._tid_words(threads) if self.reread else None
        for n, (interp, tstate, thread_id, frame, _, chunk, top, holds, uid) in enumerate(threads):
            if words is None:
                key = (tstate, thread_id, uid)
            elif words[n] is None:  # unreadable now: no key can be trusted
                out.append((interp, tstate, thread_id, frame, None, chunk, top, holds, uid))
                continue
            else:
                key = (tstate, thread_id, words[n])
            if key not in cache:
                cache[key] = self._lookup(thread_id)
            out.append((interp, tstate, thread_id, frame, cache[key], chunk, top, holds, uid))
        if len(cache) > 4 * len(threads) + 64:
            live = {
                (r[1], r[2], r[8] if words is None else words[n]) for n, r in enumerate(threads)
            }
            for k in [k for k in cache if k not in live]:
                del cache[k]
        return out

    def _tid_words(self, threads: list[ThreadRow]) -> list[int | None]:
        """Each thread's tid word as its struct pthread holds it now (None: unreadable)."""
        addrs = [0 if bad_pointer(r[2]) else r[2] + PTHREAD_TID_OFFSET for r in threads]
        words: list[int | None] = [None] * len(addrs)
        readable = [n for n, a in enumerate(addrs) if a]
        data, k = self.memory.read_uniform([addrs[n] for n in readable], 4)
        for j, (v,) in enumerate(struct.iter_unpack("<i", data[: 4 * k])):
            words[readable[j]] = v
        return words

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

"""Kernel thread ids for a walk's thread states, as this side's /proc names them,
established once per thread and kept for the thread state's life.

Two sources need a per-thread step between the thread state and the id recorded:
CPython 3.10 and older keep no kernel tid in the thread state (:mod:`.pthread_tids`
reads it out of glibc's struct pthread), and a target in another PID namespace (a
container seen from the host) holds its namespace's ids, which
:class:`~flamekit.record.proc.pid_namespace.HostTids` translates (:class:`NamespacedTids`,
3.11+). Both answer once per thread and reuse the answer while the thread lives, so a
sample pays a dict lookup per thread, or nothing at all when the thread list's parse was
reused (a steady walk hands back the same list).
"""

from __future__ import annotations

from flamekit.record.proc.pid_namespace import HostTids
from flamekit.record.walk.common import ThreadRow

#: Not a tid: marks a thread not looked up yet.
_UNKNOWN = -1


class NativeTids:
    """The per-thread cache both sources share. Each answer is kept for the life of the
    thread state: keyed by its pthread_t, its native tid and unique id (<= 3.10) too,
    since glibc reuses a dead thread's struct pthread (the same pthread_t) and malloc
    often its thread state's address for the next thread (keyed by those two alone, 26 of
    40 short threads took a dead one's tid)."""

    def __init__(self, tids: HostTids) -> None:
        self.tids = tids
        self._cache: dict[tuple[int, int, int | None, int], int | None] = {}

    def fill(self, threads: list[ThreadRow]) -> list[ThreadRow]:
        """``threads`` with each one's kernel tid as /proc here names it (None: it could
        not be established)."""
        out: list[ThreadRow] = []
        cache = self._cache
        for interp, tstate, thread_id, frame, native, chunk, top, holds, uid in threads:
            key = (tstate, thread_id, native, uid)
            tid = cache.get(key, _UNKNOWN)
            if tid == _UNKNOWN:
                tid = cache[key] = self._lookup(thread_id, native)
            out.append((interp, tstate, thread_id, frame, tid, chunk, top, holds, uid))
        if len(cache) > 4 * len(threads) + 64:
            live = {(r[1], r[2], r[4], r[8]) for r in threads}
            for k in [k for k in cache if k not in live]:
                del cache[k]
        return out

    def _lookup(self, thread_id: int, native: int | None) -> int | None:
        """The kernel tid of one thread (its pthread_t, and the tid its state holds)."""
        raise NotImplementedError


class NamespacedTids(NativeTids):
    """3.11+ in another PID namespace: the thread state's tid is the namespace's."""

    def __init__(self, tids: HostTids) -> None:
        super().__init__(tids)
        self._last_in: list[ThreadRow] | None = None
        self._last_out: list[ThreadRow] = []

    def fill(self, threads: list[ThreadRow]) -> list[ThreadRow]:
        if threads is self._last_in:
            return self._last_out  # a steady walk's parse: the same threads as last time
        self._last_in, self._last_out = threads, super().fill(threads)
        return self._last_out

    def _lookup(self, thread_id: int, native: int | None) -> int | None:
        if not native:
            return native  # None: unknown; 0: a thread state not bound yet (3.12+)
        return self.tids.host(native)

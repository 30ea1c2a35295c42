"""Trace refs for the target's code objects, with the address-reuse guard.

Each code object is copied into the trace once, under a ref; samples then name frames
by ref. An address can be reused by a new code object once the old one is freed, so
every sample re-checks the code objects it uses: one vectored read of their header
bytes, compared as a whole against the bytes seen last time. Only when they differ is
each code's fingerprint compared, and a code that is no longer the one recorded gets
read again under a new ref.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flamekit.record.code import CodeError, CodeInfo, CodeReader
from flamekit.record.memory import ReadError

#: Remembered header snapshots (address tuples -> bytes); cleared when it grows past this.
MAX_SNAPSHOTS = 4096


class CodeRefs:
    """Maps code addresses to trace refs, writing a CODE record for each new code."""

    def __init__(
        self, reader: CodeReader, emit: Callable[[int, CodeInfo], None], first_ref: int = 1
    ) -> None:
        self.reader = reader
        self._emit = emit  # called (ref, info) for each code to write into the trace
        self._refs: dict[int, int] = {}  # address -> current ref
        self._infos: dict[int, CodeInfo] = {}  # address -> what that ref recorded
        self._snap: dict[tuple[int, ...], bytes] = {}
        self._next = first_ref  #: refs are unique in a trace, also across an exec
        self.reused = 0  #: addresses found holding a different code than recorded
        self.unreadable = 0  #: code addresses that could not be read (torn frames)
        start, size = reader.span_start, reader.span_len
        self._start, self._size = start, size

    def refs(self, addresses: Sequence[int]) -> list[int] | None:
        """Trace refs for the code objects at ``addresses`` (in order), all checked now.

        None if one of them can't be read as a code object: the frame that named it was
        torn or stale, and the caller counts a sampling error.
        """
        key = tuple(addresses)
        start = self._start
        data, k = self.reader.memory.read_uniform([a + start for a in key], self._size)
        if k == len(key) and self._snap.get(key) == data:
            refs = self._refs
            return [refs[a] for a in key]
        if k != len(key):
            self.unreadable += 1
            return None
        out = self._check(key, data)
        if out is not None:
            if len(self._snap) >= MAX_SNAPSHOTS:
                self._snap.clear()
            self._snap[key] = data
        return out

    def _check(self, key: tuple[int, ...], data: bytes) -> list[int] | None:
        size = self._size
        fp = self.reader.fingerprint_from
        out = []
        for i, addr in enumerate(key):
            now = fp(data, i * size)
            if now is None:
                self.unreadable += 1
                return None
            info = self._infos.get(addr)
            if info is None or info.fingerprint != now:
                if info is not None:
                    self.reused += 1
                try:
                    info = self.reader.read_code(addr)
                except (CodeError, ReadError):
                    self.unreadable += 1
                    return None
                ref = self._next
                self._next += 1
                self._refs[addr] = ref
                self._infos[addr] = info
                self._emit(ref, info)
            out.append(self._refs[addr])
        return out

    @property
    def next_ref(self) -> int:
        """The ref the next new code object will get."""
        return self._next

    def info(self, address: int) -> CodeInfo | None:
        """What was recorded for the code currently mapped at ``address``."""
        return self._infos.get(address)

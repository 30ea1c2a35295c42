"""Trace refs for the target's code objects, with the address-reuse guard.

Each code object is copied into the trace once, under a ref; samples then name frames
by ref. An address can be reused by a new code object once the old one is freed, so
every sample re-checks the code objects it uses: one vectored read of the header
bytes of each distinct code in any thread's stack, compared as a whole against the
bytes seen last time. Only when they differ is
each code's fingerprint compared, and a code that is no longer the one recorded gets
read again under a new ref.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain

from flamekit.record.code_reader import CodeError, CodeInfo, CodeReader
from flamekit.record.proc.memory import ReadError

#: Remembered header snapshots (address tuples -> bytes); cleared when it grows past this.
MAX_SNAPSHOTS = 4096
#: Most code addresses whose headers the caller reads along with the stacks: the codes of
#: the last samples, since one sample's set often differs from the next by a leaf call.
MAX_PREFETCH = 64


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
        #: times an address was found holding another code than recorded, or none
        self.reused = 0
        self.unreadable = 0  #: stacks naming a code that could not be read (torn frames)
        start, size = reader.span_start, reader.span_len
        self._start, self._size = start, size
        #: The (address, length) ranges of the headers of recently checked codes, for a
        #: caller that reads them along with the next sample's stacks (one system call).
        self.last_ranges: tuple[tuple[int, int], ...] = ()
        self._recent: dict[int, int] = {}  # address -> its header's offset in those bytes

    def refs(self, addresses: Sequence[int]) -> list[int] | None:
        """Trace refs for the code objects at ``addresses`` (in order), all checked now.

        None if one of them can't be read as a code object: the frame that named it was
        torn or stale, and the caller counts a sampling error.
        """
        return self.refs_many([addresses])[0]

    def refs_many(
        self,
        stacks: Sequence[Sequence[int]],
        prefetched: bytes | None = None,
    ) -> list[list[int] | None]:
        """:meth:`refs` for several stacks at once (every thread of one sample).

        Each distinct address is read and checked once, in one vectored read for all of
        them: a 50-deep recursion names a handful of code objects, and the kernel's cost
        grows with the number of ranges, not their bytes (50 ranges cost 4x what 4 do).
        A stack naming an unreadable code gets None; the other stacks are unaffected.

        ``prefetched``: the bytes of :attr:`last_ranges`, read by the caller along with
        the stacks; used if this sample names only codes they cover, else read here.
        """
        uniq = dict.fromkeys(chain.from_iterable(stacks))
        key = tuple(uniq)
        if not key:
            return [[] for _ in stacks]
        start, size = self._start, self._size
        recent = self._recent
        data = None
        if prefetched is not None and all(a in recent for a in key):
            data = b"".join([prefetched[recent[a] : recent[a] + size] for a in key])
            k = len(key)
            if len(data) != k * size:  # not the bytes of these ranges after all
                data = None
        if data is None:
            data, k = self.reader.memory.read_uniform([a + start for a in key], size)
        refs = self._refs
        if k == len(key) and self._snap.get(key) == data:
            self._prefetch(key)
            get = refs.__getitem__
            return [list(map(get, s)) for s in stacks]
        good = self._check(key, data, k)
        self._prefetch(good)
        if len(good) == len(key):
            if len(self._snap) >= MAX_SNAPSHOTS:
                self._snap.clear()
            self._snap[key] = data
        out: list[list[int] | None] = []
        for s in stacks:
            if all(a in good for a in s):
                out.append([good[a] for a in s])
            else:
                self.unreadable += 1
                out.append(None)
        return out

    def _prefetch(self, addresses: Sequence[int] | dict[int, int]) -> None:
        """Have the caller read these (good) codes' headers along from now on."""
        recent = self._recent
        new = [a for a in addresses if a not in recent]
        if not new:
            return
        if len(recent) + len(new) > MAX_PREFETCH:
            recent.clear()
            new = list(addresses)
        size = self._size
        for a in new:
            recent[a] = len(recent) * size
        start = self._start
        self.last_ranges = tuple([(a + start, size) for a in recent])

    def _check(self, key: tuple[int, ...], data: bytes, k: int) -> dict[int, int]:
        """Address -> ref for each address in ``key`` that holds a code object now.

        ``data`` holds the headers of the first ``k``; the kernel stops at the first bad
        range, so the ones after it are read again, skipping each bad one.
        """
        size = self._size
        fp = self.reader.fingerprint_from
        start = self._start
        good: dict[int, int] = {}
        base = 0  # index in key of data's first record
        while True:
            for i in range(k):
                addr = key[base + i]
                ref = self._verify(addr, fp(data, i * size))
                if ref is not None:
                    good[addr] = ref
            base += k + 1  # key[base + k] could not be read: skip it
            if base >= len(key):
                return good
            rest = key[base:]
            data, k = self.reader.memory.read_uniform([a + start for a in rest], size)

    def _verify(self, addr: int, now: object) -> int | None:
        """The ref of the code at ``addr`` given its fingerprint now (None: not a code)."""
        if now is None:
            return None
        info = self._infos.get(addr)
        if info is not None and info.fingerprint == now:
            return self._refs[addr]
        if info is not None:
            self._forget(addr)
        try:
            info = self.reader.read_code(addr)
        except (CodeError, ReadError):
            return None
        ref = self._next
        self._next += 1
        self._refs[addr] = ref
        self._infos[addr] = info
        self._emit(ref, info)
        return ref

    def _forget(self, addr: int) -> None:
        """``addr`` no longer holds the code recorded there: one reuse, counted once.

        Its ref goes with it, so a code that then fails to read (a target rewriting its
        own code objects) is no code until it reads again, not another reuse at every
        check: each was one more check of the sample, which recursed until a
        RecursionError ended the recording (tests/targets/corrupt_codes.py). The header
        snapshots go too: one taken before may match again (a field set back) and would
        give the ref read since, another code's.
        """
        del self._refs[addr], self._infos[addr]
        self._snap.clear()
        self.reused += 1

    @property
    def next_ref(self) -> int:
        """The ref the next new code object will get."""
        return self._next

    def info(self, address: int) -> CodeInfo | None:
        """What was recorded for the code currently mapped at ``address``."""
        return self._infos.get(address)

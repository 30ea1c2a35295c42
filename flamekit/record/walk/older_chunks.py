"""The part of a 3.11+ stack in older data-stack chunks, and its reuse between walks.

A stack deeper than its current data-stack chunk (a few hundred frames) goes on in
older chunks, which the splice onto the last chain (see interpreter_frames) does not
cover: those are read only when a walk gets there, chunk by chunk
(:class:`OlderChunks`). Their part of the chain is kept too (:class:`Tail`): when a
walk leaves the current chunk at the same frame, towards the same older chunk, and
those chunks hold the same bytes as last time (one vectored read and a compare), that
part is the last one's, a walk being a function of those bytes alone. A 3,000-deep
recursion then costs the frames of its current chunk, not 3,000.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from flamekit.record.layout import Layout
from flamekit.record.proc.memory import ProcessMemory, ReadError
from flamekit.record.walk.common import (
    MAX_CHUNKS,
    MAX_REGION,
    MAX_TAIL_BYTES,
    Frame,
    Range,
    bad_pointer,
    drop_dead,
    required,
)


class Tail(NamedTuple):
    """The part of a thread's last chain in older data-stack chunks, for the next walk
    to reuse while their bytes stay the same."""

    entry: int  #: the frame the walk left the current chunk at
    first: int  #: the older chunk it went on in
    ranges: tuple[Range, ...]  #: the older chunks it loaded
    data: bytes  #: their bytes then
    frames: tuple[Frame, ...]  #: what the walk found in them
    positions: int  #: chain positions it took (shims included): for the depth cap
    chunk_addrs: frozenset[int]  #: addresses of its frames inside the chunks
    outs: tuple[tuple[int, bytes], ...]  #: its frames outside them: (address, bytes)
    #: eval ends in it (see ThreadStack.eval_ends) as frames below each, bottom first
    ends: tuple[int, ...] = ()


class OlderChunks:
    """The older data-stack chunks one walk went on in, loaded as it needs them."""

    __slots__ = ("entry", "first", "p0", "f0", "loaded", "next", "nbytes", "tails")

    def __init__(self, entry: int, first: int, p0: int, f0: int, tails: TailCache) -> None:
        self.entry = entry  #: the frame the walk left the current chunk at
        self.first = first  #: the chunk it went on in (0: none)
        self.p0 = p0  #: chain positions and frames the walk had then
        self.f0 = f0
        self.loaded: list[tuple[int, int, bytes]] = []  #: (base, last frame address, bytes)
        self.next = first  #: the next chunk to load (0: no more)
        self.nbytes = 0
        self.tails = tails

    def find(self, addr: int, flen: int) -> tuple[int, int, bytes] | None:
        """The loaded chunk holding the frame at ``addr``, loading more as needed:
        (its base, its last frame address, its bytes)."""
        for b, top, d in self.loaded:
            if b <= addr <= top:
                return b, top, d
        while self.next:
            if len(self.loaded) >= MAX_CHUNKS or self.nbytes > MAX_TAIL_BYTES:
                self.next = 0  # a corrupt (cyclic) chunk list, or no stack
                break
            got = self.tails.load_chunk(self.next)
            if got is None:
                self.next = 0
                break
            b, d, self.next = got
            top = b + len(d) - flen
            self.loaded.append((b, top, d))
            self.nbytes += len(d)
            if b <= addr <= top:
                return b, top, d
        return None


class TailCache:
    """Per thread, the part of its last chain in older chunks; and how to read them."""

    def __init__(self, memory: ProcessMemory, layout: Layout, flen: int, max_depth: int) -> None:
        self.memory = memory
        self.flen = flen
        self.max_depth = max_depth
        self._previous = required(layout.chunk_previous, "data-stack chunk link")
        self._size = required(layout.chunk_size, "data-stack chunk size")
        self._top = required(layout.chunk_top, "data-stack chunk top")
        self._data = required(layout.chunk_data, "data-stack chunk data")
        self._tails: dict[int, Tail] = {}  #: tstate -> its last chain's part in older chunks

    def enter(
        self,
        tstate: int,
        entry: int,
        buf: bytes,
        rpos: int,
        p0: int,
        f0: int,
        depth: int,
        known: dict[int, int],
        kbuf: bytes,
        lo: int,
        hi: int,
    ) -> tuple[OlderChunks, Tail | None]:
        """A walk, ``depth`` frames in (``p0`` chain positions, ``f0`` frames), leaves
        its current chunk (at ``rpos`` in ``buf``) at the frame ``entry``: the older
        chunks it goes on in, and the last walk's part of the chain there if it holds
        (then the walk ends here; see :meth:`holds` for the rest)."""
        older = OlderChunks(entry, self._previous_of(buf, rpos), p0, f0, self)
        return older, self.holds(tstate, entry, older.first, depth, known, kbuf, lo, hi)

    def holds(
        self,
        tstate: int,
        entry: int,
        first: int,
        depth: int,
        known: dict[int, int],
        kbuf: bytes,
        lo: int,
        hi: int,
    ) -> Tail | None:
        """The last walk's part of this thread's chain in older chunks, if it is this
        walk's too: entered at the same frame, from the same chunk, with room under the
        depth cap; none of its frames where this walk would look first (the current
        region [lo, hi], or prefetched at ``known`` in ``kbuf``, but for its frames from
        outside the chunks); and the same bytes in its chunks and in those frames (taken
        from the prefetch where a walk would take them from, else read along with the
        chunks)."""
        tail = self._tails.get(tstate)
        if (
            tail is None
            or tail.entry != entry
            or tail.first != first
            or depth + tail.positions > self.max_depth
            or any(a in tail.chunk_addrs for a in known)
            or any(b <= hi and lo < b + n for b, n in tail.ranges)
        ):
            return None
        flen = self.flen
        ranges, data = tail.ranges, tail.data
        unread = []  # frames outside the chunks not prefetched: read along with the chunks
        for a, raw in tail.outs:
            if lo <= a <= hi:
                return None
            pos = known.get(a)
            if pos is None:
                unread.append((a, raw))
            elif kbuf[pos : pos + flen] != raw:
                return None
        if unread:
            ranges = ranges + tuple((a, flen) for a, _ in unread)
            data = data + b"".join(raw for _, raw in unread)
        if not self.memory.ranges_hold(ranges, data):
            return None
        return tail

    def keep(
        self,
        tstate: int,
        older: OlderChunks | None,
        whole: bool,
        paddrs: list[int],
        pkinds: list[int],
        praws: list[bytes],
        frames: list[Frame],
        pends: list[tuple[int, int]],
    ) -> None:
        """Keep the part of this walk's chain in older chunks for the next walk, or
        forget the last one. Its frames found outside the chunks (an entry frame on the
        C stack, a generator's) are kept with their bytes: the next walk has them
        prefetched and must find the same there. ``whole``: the walk ended at the
        bottom of the stack, untruncated, without error or splice. ``pends``: its eval
        ends, (position, frames up to there).

        Not when the walk came back into the current region after entering them (the
        frame it entered at was one outside the data stack, not prefetched, above more
        of the region; kind 0 in ``pkinds``): the tail's check covers its chunks and
        outside frames, not the region's, whose changes would go unseen."""
        if older is not None and whole and older.loaded and 0 not in pkinds[older.p0 :]:
            p0, loaded = older.p0, older.loaded
            ranges = tuple((b, len(d)) for b, _, d in loaded)
            if sum(n for _, n in ranges) <= MAX_TAIL_BYTES:
                addrs = paddrs[p0:]
                outs = tuple((a, r) for a, r in zip(addrs, praws[p0:]) if r)
                self._tails[tstate] = Tail(
                    older.entry,
                    older.first,
                    ranges,
                    b"".join(d for _, _, d in loaded),
                    tuple(frames[older.f0 :]),
                    len(addrs),
                    frozenset(addrs).difference(a for a, _ in outs),
                    outs,
                    tuple(len(frames) - e for p, e in reversed(pends) if p >= p0),
                )
                return
        self._tails.pop(tstate, None)

    def forget(self, live: set[int]) -> bool:
        """Drop the tails of thread states not in ``live``; True if there were any."""
        if len(self._tails) <= len(live):
            return False
        drop_dead(self._tails, live)
        return True

    def _previous_of(self, buf: bytes, rpos: int) -> int:
        """The chunk before the current one, from the header of the current one read at
        ``rpos`` in ``buf`` (0: none, or not read)."""
        if rpos < 0 or len(buf) < rpos + self._data:
            return 0
        (prev,) = struct.unpack_from("<Q", buf, rpos + self._previous)
        return prev

    def load_chunk(self, chunk: int) -> tuple[int, bytes, int] | None:
        """(base, used bytes, previous chunk) of an older data-stack chunk, or None."""
        if bad_pointer(chunk):
            return None
        try:
            head = self.memory.read(chunk, self._data)
            (prev,) = struct.unpack_from("<Q", head, self._previous)
            (size,) = struct.unpack_from("<Q", head, self._size)
            (top,) = struct.unpack_from("<Q", head, self._top)
            used = self._data + 8 * top
            if not 0 < used <= min(size, MAX_REGION):
                return None
            return chunk, self.memory.read(chunk, used), prev
        except ReadError:
            return None

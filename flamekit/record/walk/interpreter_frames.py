"""Frames of CPython 3.11 and later: _PyInterpreterFrame chains, most of them in the
thread's data stack (chunks of frames), some outside it (C-stack shims, generators).

Each thread's prefetch is the used part of its current data-stack chunk plus some slack,
its current-frame word (3.11/3.12, in the _PyCFrame) and up to MAX_OUTSIDE frames found
outside the chunk last time.

Only what changed is parsed: each thread's last chain is kept, and where the data stack
below a frame holds the same bytes as last time (and the prefetched frames outside it
too) the rest of the chain is taken from it, a walk being a function of those bytes
alone (:class:`_Chain`, :func:`_splice_floor`). A stack deeper than its current chunk
goes on in older chunks, which that splice does not cover: their part of the chain is
kept too, and reused while those chunks hold the same bytes (:mod:`.older_chunks`).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from flamekit.codeformat import NOT_STARTED
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import (
    CYCLE_CHECK,
    CYCLIC,
    MAX_OFFSET,
    MAX_OUTSIDE,
    MAX_REGION,
    REGION_SLACK,
    USER_SPACE_END,
    Frame,
    FrameModel,
    Range,
    ThreadRow,
    WalkResult,
    bad_pointer,
    drop_dead,
    frame_struct,
    required,
)
from flamekit.record.walk.older_chunks import OlderChunks, Tail, TailCache
from flamekit.record.walk.thread_list import Snapshot

#: Per thread, what to prefetch next time: (cframe address, data-stack chunk, bytes of
#: it to read, frames outside the chunk).
Prefetch = tuple[int, int, int, list[int]]
#: Where a thread's prefetch landed in a read: (cframe, where its current-frame word is,
#: chunk, where the region is, its length, {frame outside: where}); -1: not read.
Landed = tuple[int, int, int, int, int, dict[int, int]]
#: Where a thread's frames are for this walk: (tstate, cframe, current frame, its word
#: needs a second read, chunk, region bytes, region position in the first read, the
#: region needs a second read, {prefetched frame outside: position in the first read}).
Job = tuple[int, int, int, bool, int, int, int, bool, dict[int, int]]


class Spec(NamedTuple):
    """A thread's prefetch in a read plan: its ranges from ``first`` on."""

    first: int  #: index of its first range in the plan
    cframe: int  #: 0: no current-frame word read (3.13+, or none known)
    chunk: int  #: 0: no region read
    length: int
    outside: list[int]


class _Chain:
    """A thread's last walked chain, kept so the next walk parses only what changed.
    Per position, indexed from the *bottom* of the chain (end-position 0 is the
    outermost frame): everything about a position depends only on the positions below
    it, so a later chain that shares the bottom part shares these lists' heads."""

    __slots__ = (
        "chunk",
        "buf",
        "rpos",
        "size",
        "flen",
        "rev_addrs",
        "rev_rem",
        "rev_reach",
        "solid",
        "outs",
        "index",
        "frames",
        "hint",
        "tail",
        "ends",
    )

    def __init__(self) -> None:
        self.chunk = 0  #: the data-stack chunk the region starts at
        self.buf = b""  #: the region's bytes are buf[rpos : rpos + size]
        self.rpos = 0
        self.size = 0
        self.flen = 0
        self.rev_addrs: list[int] = []  #: frame address
        self.rev_rem: list[int] = []  #: frames the walk emits from here to the end
        self.rev_reach: list[int] = []  #: region bytes the walk from here reads
        self.solid = 0  #: positions below this read nothing but region and prefetched frames
        self.outs: list[tuple[int, int, bytes]] = []  #: prefetched frames (pos, addr, bytes)
        self.index: dict[int, int] = {}  #: address -> end-position (may hold stale entries)
        self.frames: tuple[Frame, ...] = ()
        self.hint = -1  #: where the walk that built this chain spliced (-1: it did not)
        #: the part in older data-stack chunks at its bottom (end-position 0 stands for
        #: all of it), reused as a whole: a splice above it holds only while it does
        self.tail: Tail | None = None
        #: where evaluation calls' frames end, bottom first: (end-position of the frame
        #: that says so, frames below the end); a splice keeps those below it
        self.ends: list[tuple[int, int]] = []

    @classmethod
    def build(
        cls,
        old: _Chain | None,
        m: int,
        chunk: int,
        buf: bytes,
        rpos: int,
        size: int,
        flen: int,
        addrs: list[int],
        kinds: list[int],
        counts: list[int],
        raws: list[bytes],
        frames: tuple[Frame, ...],
        tail: Tail | None = None,
        pends: list[tuple[int, int]] | None = None,
    ) -> _Chain:
        """This walk's chain: its own ``addrs`` (innermost first) above the bottom ``m``
        positions of ``old``, or above ``tail``, the part it took whole from older chunks
        (one position, not indexed: a walk meets it only through the frames above).
        ``pends``: this walk's own eval ends, (position in ``addrs``, frames up to it)."""
        c = cls()
        c.chunk, c.buf, c.rpos, c.size, c.flen, c.frames = chunk, buf, rpos, size, flen, frames
        c.hint = m - 1
        k = len(addrs)
        total = len(frames)
        if old is not None and m:
            rev_addrs = old.rev_addrs[:m]
            rev_rem = old.rev_rem[:m]
            rev_reach = old.rev_reach[:m]
            outs = [o for o in old.outs if o[0] < m]
            reach = rev_reach[-1]
            index = old.index
            c.tail = old.tail
            ends = [e for e in old.ends if e[0] < m]
        elif tail is not None:
            rev_addrs, rev_rem, rev_reach, outs, reach, index = (
                [tail.entry],
                [len(tail.frames)],
                [0],
                [],
                0,
                {},
            )
            m = 1
            c.tail = tail
            ends = [(0, fb) for fb in tail.ends]
        else:
            rev_addrs, rev_rem, rev_reach, outs, reach, index = [], [], [], [], 0, {}
            m = 0
            ends = []
        if pends:
            ends += [(m + k - 1 - p, total - e) for p, e in reversed(pends)]
        c.ends = ends
        solid = m
        grounded = True  # no kind-2 position met yet, going up from the bottom
        for p in range(k - 1, -1, -1):
            kind = kinds[p]
            a = addrs[p]
            if kind == 0:
                own = a + flen - chunk
                if own > reach:
                    reach = own
            elif kind == 1:
                outs.append((len(rev_addrs), a, raws[p]))
            else:
                grounded = False
            if grounded:
                solid += 1
            index[a] = len(rev_addrs)
            rev_addrs.append(a)
            rev_rem.append(total - counts[p])
            rev_reach.append(reach)
        n = len(rev_addrs)
        if len(index) > 2 * n + 64:  # stale entries from chains long gone
            index = dict(zip(rev_addrs, range(n)))
        c.rev_addrs, c.rev_rem, c.rev_reach = rev_addrs, rev_rem, rev_reach
        c.solid, c.outs, c.index = solid, outs, index
        return c


def _splice_floor(
    old: _Chain, q: int, buf: bytes, rpos: int, size: int, kbuf: bytes, known: dict[int, int]
) -> int:
    """How far down the last chain may be reused: the walk may splice at end-position
    ``q`` if the result is greater than ``q``, else only at positions below it."""
    floor = q + 1
    # Prefetched frames outside the region, at or below q: each must be unchanged
    # and still outside the region (else a walk would read it from the region).
    flen = old.flen
    first, last = old.chunk, old.chunk + size - flen  # frame addresses in the region
    for oq, a, raw in old.outs:
        if oq >= floor:
            break
        pos = known.get(a)
        if pos is None or first <= a <= last or kbuf[pos : pos + flen] != raw:
            floor = oq  # only the part of the chain below this frame can match
            break
    if floor == 0:
        return 0
    # The region's bytes the rest of the walk would read, largest prefix that holds:
    # reach shrinks going down the chain, so a binary search over positions.
    reach = old.rev_reach
    obuf, opos, osize = old.buf, old.rpos, old.size

    def same(p: int) -> bool:
        n = reach[p]
        return n <= size and n <= osize and buf[rpos : rpos + n] == obuf[opos : opos + n]

    if same(floor - 1):
        return floor
    # same(floor - 1) is False: find the highest p below it with same(p), trying
    # first where the last walk spliced (the same frame changes sample after sample).
    lo, hi = 0, floor - 1
    h = old.hint
    if 0 <= h < hi:
        if same(h):
            if h + 1 == hi or not same(h + 1):
                return h + 1
            lo = h + 1
        else:
            hi = h
            if not same(0):
                return 0
    elif not same(0):
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if same(mid):
            lo = mid
        else:
            hi = mid
    return lo + 1


class InterpreterFrames(FrameModel):
    """Walks 3.11+ threads; keeps per thread its prefetch, last chain and older-chunk tail."""

    steady = True

    def __init__(
        self, target: PythonTarget, max_depth: int, consistent: bool, eval_ends: bool = False
    ) -> None:
        """``eval_ends``: on 3.11, read each frame's is_entry flag for the walk's
        eval ends (3.12+ has them from its shims at no cost)."""
        super().__init__(max_depth)
        self.memory = target.memory
        self.consistent = consistent
        lay = target.layout
        fields = [(lay.frame_code, "Q"), (lay.frame_back, "Q"), (lay.frame_instr, "Q")]
        owner = required(lay.frame_owner, "frame owner")
        self._skip_owner = lay.owner_skip_from if lay.owner_skip_from is not None else 256
        #: 3.11 with eval ends: the owner is read with the is_entry byte before it as one
        #: u16 (is_entry | owner << 8) and every frame with either set takes the walk's
        #: shim branch, which tells them apart: the common frame (the thread's own, not
        #: an entry) costs what it did, and without eval ends nothing changes
        self._entry_flag = bool(eval_ends and lay.is_entry_before_owner)
        if self._entry_flag:
            fields.append((owner - (lay.is_entry_before_owner or 0), "H"))
            self._skip_owner = 1
        else:
            fields.append((owner, "B"))
        #: 3.12+: the owner of an evaluation call's entry shim (-1: none)
        self._eval_entry = lay.owner_eval_entry if lay.owner_eval_entry is not None else -1
        frame = frame_struct(fields, 0)
        self._flen, self._unpack = frame.size, frame.struct.unpack_from
        self._identity, self._fidx = frame.identity, frame.order
        self._none = target.symbols.get("_Py_NoneStruct", -1)
        self._tag_mask = ~lay.code_tag_bits
        self._tag_bits = lay.code_tag_bits
        self._never_outermost = frozenset(lay.never_outermost)
        self._adaptive = lay.code_adaptive or 0
        #: 3.11/3.12: the thread state points at a _PyCFrame holding the current frame
        self._has_cframe = lay.cframe_current_frame is not None
        self._cframe_off = lay.cframe_current_frame or 0
        self._cframe_prev = lay.cframe_previous
        self._chunk_size = required(lay.chunk_size, "data-stack chunk size")

        #: tstate -> what to prefetch for it
        self._spec: dict[int, Prefetch] = {}
        #: tstate -> its last chain, for the next walk to reuse the unchanged part
        self._last: dict[int, _Chain] = {}
        #: per thread, the part of its last chain in older data-stack chunks
        self._tails = TailCache(self.memory, lay, self._flen, max_depth)

    # -- the read plan -------------------------------------------------------------------

    def prefetch(self, tstate: int, ranges: list[Range]) -> Spec | None:
        s = self._spec.get(tstate)
        if s is None:
            return None
        cframe, chunk, length, outside = s
        n0 = len(ranges)
        if cframe:
            ranges.append((cframe + self._cframe_off, 8))
        if chunk:
            ranges.append((chunk, length))
        flen = self._flen
        ranges += [(a, flen) for a in outside]
        return Spec(n0, cframe, chunk, length, outside)

    def control(self, spec: Spec) -> tuple[int, ...]:
        return (spec.first,) if spec.cframe else ()  # its first range is the cframe word

    def forget(self, live: set[int]) -> None:
        for cache in (self._spec, self._last):
            if len(cache) > len(live):
                drop_dead(cache, live)
                self.replan = True
        if self._tails.forget(live):
            self.replan = True

    # -- a walk --------------------------------------------------------------------------

    def walk_steady(self, jobs: list[Job], data: bytes) -> list[WalkResult]:
        return self._run_jobs(jobs, data, b"", 0)

    def walk(
        self, threads: list[ThreadRow], snap: Snapshot
    ) -> tuple[list[WalkResult], list[Job] | None]:
        """Use the prefetched current frame and data stack where they are still right;
        read the rest for all threads in one more call; then walk each chain. Also
        returns the jobs when no second read was needed (for the thread list to keep)."""
        data = snap.data
        landed = self._landed(snap)
        has_cframe, cf_off = self._has_cframe, self._cframe_off
        ranges: list[Range] = []
        jobs: list[Job] = []
        for _, t, _, frame, _, chunk, top, _, _ in threads:
            s = landed.get(t)
            if s is None:
                known: dict[int, int] = {}
                scframe, cpos, schunk, spos, slen = 0, -1, 0, -1, 0
            else:
                scframe, cpos, schunk, spos, slen, known = s
            cframe = 0
            need_cframe = False
            if has_cframe:
                cframe = frame if frame and not bad_pointer(frame) else 0
                frame = 0
                if cframe:
                    if scframe == cframe and cpos >= 0:
                        (frame,) = struct.unpack_from("<Q", data, cpos)
                    else:
                        need_cframe = True
                        ranges.append((cframe + cf_off, 8))
            size = top - chunk
            if not (chunk and not bad_pointer(chunk) and 0 < size <= MAX_REGION):
                size = 0
            rpos = -1
            need_region = False
            if size:
                if schunk == chunk and spos >= 0 and size <= slen:
                    rpos = spos
                else:
                    need_region = True
                    ranges.append((chunk, size))
            jobs.append((t, cframe, frame, need_cframe, chunk, size, rpos, need_region, known))
        if ranges:
            data2, done = self.memory.read_ranges_partial(ranges)
            return self._run_jobs(jobs, data, data2, done), None
        return self._run_jobs(jobs, data, b"", 0), jobs

    def _landed(self, snap: Snapshot) -> dict[int, Landed]:
        """Where each thread's prefetch landed in the first read (ranges < read were)."""
        plan = snap.plan
        if plan is None:
            return {}
        at, k = plan.at, snap.read
        out: dict[int, Landed] = {}
        for _, t, _, spec in plan.slots:
            if spec is None:
                continue
            r, cframe, chunk, length, outside = spec
            cpos = rpos = -1
            if cframe:
                cpos = at[r] if r < k else -1
                r += 1
            if chunk:
                rpos = at[r] if r < k else -1
                r += 1
            known = {}
            for a in outside:
                if r < k:
                    known[a] = at[r]
                r += 1
            out[t] = (cframe, cpos, chunk, rpos, length, known)
        return out

    def _run_jobs(self, jobs: list[Job], data: bytes, data2: bytes, done: int) -> list[WalkResult]:
        """Walk each thread's chain where its job says its frames are (``data``: the
        first read; ``data2``: the second, ``done`` of its ranges read)."""
        cf_off = self._cframe_off
        out: list[WalkResult] = []
        pos = 0
        r = 0
        for t, cframe, frame, need_cframe, chunk, size, rpos, need_region, known in jobs:
            error = None
            if need_cframe:
                if r < done:
                    (frame,) = struct.unpack_from("<Q", data2, pos)
                else:
                    try:
                        frame = self._read_ptr(cframe + cf_off)
                    except ReadError as e:
                        error = f"cannot read the current frame: {e}"
                pos += 8
                r += 1
            buf = data
            if need_region:
                buf = data2
                rpos = pos if r < done else -1
                pos += size
                r += 1
            if error is not None:
                out.append(((), False, error, ()))
                continue
            result, outside = self._walk_chain(t, frame, chunk, buf, rpos, size, data, known)
            failed = result[2] is not None and (self.consistent or not result[0])
            caller = self._caller_frame(cframe) if failed and cframe else None
            if caller is not None:
                again = self._walk_chain(t, caller, chunk, buf, rpos, size, data, known)
                if again[0][2] is None:
                    result, outside = again
                    self.entries += 1
                    if result[3]:  # the call being entered has no frame yet
                        result = (*result[:3], (0, *result[3]))
            out.append(result)
            self._remember(t, cframe, chunk, buf, rpos, size, outside)
        return out

    def _caller_frame(self, cframe: int) -> int | None:
        """Where to walk a thread caught entering the eval loop from (3.11/3.12): the
        caller's current frame, as its _PyCFrame names it (None: not to be had).

        Each entry points the thread state at a new _PyCFrame on the C stack a few
        instructions before it stores the frame to run in it (3.11: and links that frame
        to the caller's): what is read meanwhile is whatever those slots held, often an
        older frame at the same place (paused walks of tests/targets/c_callbacks.py
        failed 1-2% of the time). The new cframe's link to the caller's is set first,
        and the caller's chain is whole: the stack minus the frame not yet started.
        Used when the walk failed on a stopped target, where nothing else makes a chain
        fail, or before its first frame on a running one (later failures there are
        most often torn reads: the caller's chain would drop their innermost frames).
        """
        if self._cframe_prev is None:
            return None
        try:
            prev = self._read_ptr(cframe + self._cframe_prev)
            if bad_pointer(prev):
                return None
            frame = self._read_ptr(prev + self._cframe_off)
        except ReadError:
            return None
        return None if frame and bad_pointer(frame) else frame

    def _remember(
        self, t: int, cframe: int, chunk: int, buf: bytes, rpos: int, size: int, outside: list
    ) -> None:
        """What to prefetch for this thread next time."""
        length = 0
        if size:
            cap = MAX_REGION
            if rpos >= 0:
                (total,) = struct.unpack_from("<Q", buf, rpos + self._chunk_size)
                if size <= total <= MAX_REGION:
                    cap = total
            length = min(size + REGION_SLACK, cap)
        kept_chunk = chunk if length else 0
        kept_outside = outside[:MAX_OUTSIDE]
        spec = (cframe, kept_chunk, length, kept_outside)
        old = self._spec.get(t)
        if old == spec:
            return
        if old is not None:
            old_cframe, old_chunk, old_length, old_outside = old
            if (
                old_cframe == cframe
                and old_chunk == kept_chunk
                and old_outside == kept_outside
                and size + REGION_SLACK // 2 <= old_length <= length + REGION_SLACK
            ):
                return  # the last read still covers the stack with room: keep it as it is
        self._spec[t] = spec
        self.replan = True

    # -- one chain -----------------------------------------------------------------------

    def _walk_chain(
        self,
        tstate: int,
        addr: int,
        chunk: int,
        buf: bytes,
        rpos: int,
        size: int,
        kbuf: bytes,
        known: dict[int, int],
    ) -> tuple[WalkResult, list[int]]:
        """Follow ``previous`` from ``addr``. Frames inside [chunk, chunk+size) are in
        ``buf`` at ``rpos`` (-1: not read); ``known`` maps other prefetched frames to
        positions in ``kbuf``. Also returns the frames found outside the chunk.

        Only the frames that changed since the last walk of this thread are parsed: once
        the walk reaches a frame of the last chain below which the data stack holds the
        same bytes as last time (and the prefetched frames outside it too), the rest of
        the chain is the last one's, because a walk is a function of those bytes alone.
        A CPU-bound thread changes its innermost frame or two between samples, so a
        50-deep stack costs two frames of Python instead of fifty.

        A stack deeper than its current chunk (a few hundred frames) goes on in older
        chunks, which that splice does not cover. Their part of the chain is kept too:
        when the walk leaves the current chunk at the same frame, towards the same older
        chunk, and those chunks hold the same bytes as last time (one vectored read and a
        compare), that part is the last one's, for the same reason. A 3,000-deep
        recursion then costs the frames of its current chunk, not 3,000.
        """
        frames: list[Frame] = []
        append = frames.append
        flen = self._flen
        unpack = self._unpack
        identity = self._identity
        fidx = self._fidx
        skip_owner = self._skip_owner
        tag_bits = self._tag_bits
        tag_mask = self._tag_mask
        adaptive = self._adaptive
        none = self._none
        eval_entry = self._eval_entry
        entry_flag = self._entry_flag
        end = USER_SPACE_END
        if rpos >= 0:
            lo = chunk
            hi = chunk + size - flen
            shift = chunk - rpos
        else:
            lo, hi, shift = 1, 0, 0
        old = self._last.get(tstate)
        if old is not None and (old.chunk != chunk or rpos < 0):
            old = None
        floor = old.solid if old is not None else 0  # splice only at end-positions below
        index = old.index if old is not None else {}
        olds = old.rev_addrs if old is not None else []
        older: OlderChunks | None = None  # once the walk enters older chunks
        xlo, xhi, xbuf = 1, 0, b""  # the older chunk the last frame was found in
        outside: list[int] = []
        error = None
        truncated = False
        # Per position of this walk's own part of the chain (innermost first): address,
        # kind (0 in the region, 1 prefetched outside it, 2 read otherwise), frames so far,
        # and the bytes of a frame outside the chunks (b"": in a chunk).
        paddrs: list[int] = []
        pkinds: list[int] = []
        pcount: list[int] = []
        praws: list[bytes] = []
        pends: list[tuple[int, int]] = []  # eval ends met: (position, frames up to there)
        spliced = 0  # end-positions of the last chain reused (0: none)
        tail: Tail | None = None  # the last walk's part in older chunks, if reused whole
        check_at = CYCLE_CHECK
        t: tuple | None  # the frame's fields, once found
        for depth in range(self.max_depth):
            if not addr:
                break
            if depth == check_at:
                check_at += CYCLE_CHECK
                if len(set(paddrs)) < depth:
                    error = CYCLIC
                    break
            if lo <= addr <= hi:
                if floor:
                    q = index.get(addr)
                    if q is not None and q < floor and olds[q] == addr:
                        assert old is not None  # floor > 0 comes from it
                        floor = self._floor_at(old, q, depth, tstate, buf, rpos, size, kbuf, known)
                        if floor > q:
                            spliced = q + 1
                            break
                t = unpack(buf, addr - shift)
                kind = 0
                raw = b""
            else:
                t = None
                raw = b""
                kind = 2
                pos = known.get(addr)
                if pos is not None:
                    t = unpack(kbuf, pos)
                    outside.append(addr)
                    kind = 1
                    raw = kbuf[pos : pos + flen]
                else:
                    if addr & 7 or addr >= end:
                        error = f"bad frame pointer {addr:#x}"
                        break
                    if xlo <= addr <= xhi:  # most often the chunk the last frame was in
                        t = unpack(xbuf, addr - xlo)
                    else:
                        if older is None:  # the walk leaves the current chunk here
                            older, tail = self._tails.enter(
                                tstate, addr, buf, rpos, len(paddrs), len(frames), depth,
                                known, kbuf, lo, hi
                            )  # fmt: skip
                            if tail is not None:
                                self.tail_hits += 1
                                frames += tail.frames
                                outside += [a for a, _ in tail.outs]  # found prefetched
                                addr = 0
                                break
                        found = older.find(addr, flen)
                        if found is not None:
                            xlo, xhi, xbuf = found
                            t = unpack(xbuf, addr - xlo)
                    if t is None:
                        try:
                            raw = self.memory.read(addr, flen)  # kept for the tail
                        except ReadError:
                            error = f"cannot read frame at {addr:#x}"
                            break
                        t = unpack(raw, 0)
                        outside.append(addr)
            paddrs.append(addr)
            pkinds.append(kind)
            pcount.append(len(frames))
            praws.append(raw)
            if not identity:
                t = (t[fidx[0]], t[fidx[1]], t[fidx[2]], t[fidx[3]])
            code, addr, instr, owner = t
            if owner >= skip_owner:
                if owner == eval_entry:  # 3.12+: the shim under an eval call's first frame
                    pends.append((len(paddrs) - 1, len(frames)))
                if not entry_flag:
                    continue  # a C-stack / interpreter shim, not a Python call
                if owner & 0xFF:  # 3.11, is_entry: its eval call's first frame
                    pends.append((len(paddrs) - 1, len(frames) + 1))
                owner >>= 8
            if tag_bits:
                if code & tag_bits == tag_bits or code == 1:
                    continue
                code &= tag_mask
            if code == none:
                continue
            if code & 7 or not 0x10000 <= code < end:
                error = f"bad code pointer {code:#x}"
                break
            off = instr - code - adaptive
            if off < 0:
                off = NOT_STARTED
            elif off > MAX_OFFSET:
                error = f"implausible instruction pointer {instr:#x}"
                break
            append((code, off))
        else:
            truncated = addr != 0
        if error is None and not truncated and not spliced and tail is None and paddrs:
            if owner in self._never_outermost:  # the last frame the loop unpacked
                error = "torn chain: it ends at a frame no thread's stack ends at"
        reused: list[int] | tuple[int, ...] = ()  # eval ends taken along: frames below
        if spliced:
            assert old is not None
            self.spliced += 1
            _take_rest(old, spliced, frames, outside)
            if old.ends:
                reused = [fb for q, fb in old.ends if q < spliced]
        elif tail is not None:
            reused = tail.ends
        ends: tuple[int, ...] = ()
        if pends or reused:
            total = len(frames)
            ends = (*[e for _, e in pends], *[total - fb for fb in reversed(reused)])
        result = (tuple(frames), truncated, error, ends)
        if tail is None and not (spliced and old is not None and old.tail is not None):
            whole = error is None and not truncated and not spliced
            self._tails.keep(tstate, older, whole, paddrs, pkinds, praws, frames, pends)
        if (
            error is None
            and not truncated
            and rpos >= 0
            and (spliced or tail is not None or not _off_the_region(pkinds))
        ):
            self._last[tstate] = _Chain.build(
                old if spliced else None,
                spliced,
                chunk,
                buf,
                rpos,
                size,
                flen,
                paddrs,
                pkinds,
                pcount,
                praws,
                result[0],
                tail,
                pends,
            )
        else:
            self._last.pop(tstate, None)
        return result, outside

    def _floor_at(
        self,
        old: _Chain,
        q: int,
        depth: int,
        tstate: int,
        buf: bytes,
        rpos: int,
        size: int,
        kbuf: bytes,
        known: dict[int, int],
    ) -> int:
        """The walk, ``depth`` frames in, met end-position ``q`` of the last chain: how
        far down that chain it may splice (greater than ``q``: here)."""
        floor = _splice_floor(old, q, buf, rpos, size, kbuf, known)
        if floor <= q:
            return floor
        tail = old.tail
        if tail is not None:
            # the walk from q would go on into it: it must hold too. The region's frame
            # addresses are the walk's: its chunk is old's (else no splice is tried)
            lo, hi = old.chunk, old.chunk + size - old.flen
            held = self._tails.holds(tstate, tail.entry, tail.first, depth + q, known, kbuf, lo, hi)
            if held is not None:
                self.tail_hits += 1
            if held is not tail:
                return 0
        below = q + 1 + (tail.positions - 1 if tail is not None else 0)
        if depth + below <= self.max_depth:
            return floor
        return 0  # the depth cap: no splice below would fit either

    def _read_ptr(self, addr: int) -> int:
        (v,) = struct.unpack("<Q", self.memory.read(addr, 8))
        return v


def _take_rest(old: _Chain, spliced: int, frames: list[Frame], outside: list[int]) -> None:
    """Add to a walk that spliced onto ``old`` at end-position ``spliced - 1`` the rest
    of ``old``'s frames, and its frames found outside the chunk there (prefetched)."""
    rem = old.rev_rem[spliced - 1]
    if rem:
        frames += old.frames[-rem:]
    outside += [a for q, a, _ in reversed(old.outs) if q < spliced]
    if old.tail is not None:
        outside += [a for a, _ in old.tail.outs]


def _off_the_region(kinds: list[int]) -> bool:
    """No frame of the region lies below the last one read from elsewhere (a deep
    stack's older chunks): a later walk could splice onto nothing of this chain (see
    _Chain.solid), and building it would cost a step per frame."""
    return 2 in kinds and 0 not in kinds[len(kinds) - kinds[::-1].index(2) :]

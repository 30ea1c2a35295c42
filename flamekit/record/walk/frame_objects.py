"""Frames of CPython 3.10 and older: a chain of PyFrameObjects linked by ``f_back``, each
a heap object of its own.

Each thread's prefetch is the frame objects of its last chain (and of recent chains
while they are few), neighbours merged into one range: frame objects of similar size
come from the same allocator pools, so most of a chain sits in a few runs of memory.

Only what changed is parsed: the bytes of the last chain's frames are gathered from the
prefetch and compared with last time's; where they hold from the bottom up, the rest of
the chain is the last one's, a walk being a function of those bytes alone
(:class:`_OChain`, :func:`_holding`).
"""

from __future__ import annotations

from itertools import accumulate
from operator import itemgetter
from typing import NamedTuple

from flamekit.codeformat import NOT_STARTED
from flamekit.record.layout import LASTI_UNITS
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import (
    CYCLE_CHECK,
    CYCLIC,
    MERGE_GAP,
    USER_SPACE_END,
    Frame,
    FrameModel,
    Range,
    ThreadRow,
    WalkResult,
    drop_dead,
    frame_struct,
)
from flamekit.record.walk.thread_list import Snapshot

#: Where frames are in some buffer: frame address -> (buffer, position).
FrameCache = dict[int, tuple[bytes, int]]
_NOWHERE: dict[int, int] = {}  #: no prefetch positions (never written)


class Spec(NamedTuple):
    """A thread's prefetch in a read plan, before its positions are known."""

    first: int  #: index of its first range in the plan
    spans: list[Range]  #: the merged ranges
    starts: list[int]  #: sorted frame starts in them


class Located(NamedTuple):
    """A thread's prefetch in a read plan, made once per plan, not per walk."""

    pos_of: dict[int, int]  #: frame address -> where its bytes are in the read
    end: int  #: the index after its last range: read whole when that many were


class _OChain:
    """A thread's last walked chain of frame objects, kept so the next walk parses only
    the frames that changed (see FrameObjects._walk_chain). Positions are counted from
    the *bottom* (end-position 0 is the outermost frame), so the part a later chain
    shares with this one keeps its numbers."""

    __slots__ = ("rev_addrs", "index", "frames", "raw", "pos_of", "slices")

    def __init__(
        self,
        rev_addrs: list[int],
        index: dict[int, int],
        frames: tuple[Frame, ...],
        raw: bytes,
        pos_of: dict[int, int] | None,
        slices: list[slice] | None,
    ) -> None:
        self.rev_addrs = rev_addrs  #: frame addresses, outermost first
        self.index = index  #: address -> end-position (may hold stale entries)
        self.frames = frames  #: innermost first, one per position
        self.raw = raw  #: the frames' bytes as the walk read them, innermost first
        #: the prefetch positions ``slices`` were found in (None: not known)
        self.pos_of = pos_of
        #: where each frame's bytes are in a prefetch read of that plan, innermost first
        self.slices = slices

    @classmethod
    def build(
        cls,
        last: _OChain | None,
        spliced: int,
        chain: list[int],
        raws: list[bytes],
        lposes: list[int | None],
        frames: list[Frame],
        pos_of: dict[int, int] | None,
        flen: int,
    ) -> _OChain:
        """This walk's chain: its own ``chain`` above the bottom ``spliced + 1`` positions
        of ``last`` (none if ``spliced`` is -1)."""
        if last is not None and spliced >= 0:
            m = spliced + 1
            rev = last.rev_addrs[:m]
            index = last.index
            raw = b"".join(raws) + last.raw[len(last.raw) - m * flen :]
            tail = last.slices
            slices_tail = (
                tail[len(tail) - m :] if tail is not None and last.pos_of is pos_of else None
            )
        else:
            rev, index, raw, slices_tail = [], {}, b"".join(raws), []
        base = len(rev)
        rev.extend(reversed(chain))
        index.update(zip(reversed(chain), range(base, len(rev))))
        if len(index) > 2 * len(rev) + 64:  # stale entries from chains long gone
            index = dict(zip(rev, range(len(rev))))
        slices = None
        if pos_of is not None and slices_tail is not None:
            own = [slice(p, p + flen) for p in lposes if p is not None]
            if len(own) == len(lposes):
                slices = own + slices_tail
        return cls(rev, index, tuple(frames), raw, pos_of, slices)


def _holding(last: _OChain, data: bytes, pos_of: dict[int, int], flen: int) -> int:
    """How many frames at the bottom of ``last`` have the same bytes in this walk's
    prefetch (``data``, frames at ``pos_of``) as when it was walked: one gather of
    the chain's frames and a few compares of its bytes' tails (the same tail from
    one frame means the same from every frame below it, so a binary search)."""
    slices = last.slices
    if last.pos_of is not pos_of or slices is None:
        try:
            slices = [slice(p, p + flen) for p in map(pos_of.__getitem__, reversed(last.rev_addrs))]
        except KeyError:
            return 0
        last.slices, last.pos_of = slices, pos_of
    n = len(slices)
    if not n:
        return 0
    cur = b"".join(itemgetter(*slices)(data)) if n > 1 else data[slices[0]]
    old = last.raw
    if cur == old:
        return n
    if n > 1 and cur[flen:] == old[flen:]:
        return n - 1  # the common case: only the innermost frame moved
    lo, hi = 1, n  # the tail from frame hi is the same, from frame lo it is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cur[mid * flen :] == old[mid * flen :]:
            hi = mid
        else:
            lo = mid
    return n - hi


class FrameObjects(FrameModel):
    """Walks threads of CPython 3.10 and older; keeps per thread the frames to prefetch
    and its last chain."""

    def __init__(self, target: PythonTarget, max_depth: int, consistent: bool) -> None:
        super().__init__(max_depth)
        self.memory = target.memory
        self.consistent = consistent
        lay = target.layout
        fields = [(lay.ob_type, "Q"), (lay.frame_back, "Q"), (lay.frame_code, "Q")]
        fields.append((lay.frame_instr, "i"))
        if lay.frame_running is not None:
            fields.append((lay.frame_running, lay.frame_running_format or "b"))
        self._fstart = lay.ob_type
        frame = frame_struct(fields, self._fstart)
        self._flen, self._unpack = frame.size, frame.struct.unpack_from
        self._identity, self._fidx = frame.identity, frame.order
        #: where the unpacked frame holds its "running" field, and its value then
        self._running_at = frame.order[4] if len(frame.order) > 4 else -1
        self._running_value = lay.frame_running_value
        self._frame_type = target.symbols.get("PyFrame_Type", 0)
        self._lasti_scale = 2 if lay.instr_kind == LASTI_UNITS else 1

        #: tstate -> the frame objects to prefetch: its last chain's, and those of
        #: recent chains while they are few (a leaf call's frame comes and goes)
        self._chains: dict[int, set[int]] = {}
        #: tstate -> its last chain, for the next walk to reuse the unchanged part
        self._olast: dict[int, _OChain] = {}

    # -- the read plan -------------------------------------------------------------------

    def prefetch(self, tstate: int, ranges: list[Range]) -> Spec | None:
        chain = self._chains.get(tstate)
        if not chain:
            return None
        spans, starts = self._merge(chain)
        n0 = len(ranges)
        ranges += spans
        return Spec(n0, spans, starts)

    def locate(self, spec: Spec, at: list[int]) -> Located:
        n0, spans, starts = spec
        return Located(self._landing(spans, starts, at, n0), n0 + len(spans))

    def forget(self, live: set[int]) -> None:
        for cache in (self._chains, self._olast):
            if len(cache) > len(live):
                drop_dead(cache, live)
                self.replan = True

    def _merge(self, addrs: set[int] | list[int]) -> tuple[list[Range], list[int]]:
        """Frame spans at ``addrs`` as few ranges: (ranges, sorted span starts).

        Frame objects of similar size come from the same allocator pools, so most of a
        chain sits in a few runs of memory: one iovec per run beats one per frame.
        """
        flen = self._flen
        fstart = self._fstart
        starts = sorted({a + fstart for a in addrs})
        spans: list[Range] = []
        lo = starts[0]
        hi = lo + flen
        for s in starts:
            if s - hi > MERGE_GAP:
                spans.append((lo, hi - lo))
                lo = s
            hi = s + flen
        spans.append((lo, hi - lo))
        return spans, starts

    def _landing(
        self, spans: list[Range], starts: list[int], at: list[int], n0: int
    ) -> dict[int, int]:
        """{frame address: where its bytes are in the read} for frames at ``starts``
        merged into ``spans``, the read's ranges ``n0`` on, which start at ``at[n0:]``."""
        fstart = self._fstart
        pos_of: dict[int, int] = {}
        i = 0
        for r, (lo, length) in enumerate(spans, n0):
            base = at[r] - lo
            while i < len(starts) and starts[i] < lo + length:
                pos_of[starts[i] - fstart] = base + starts[i]
                i += 1
        return pos_of

    def _landed(self, pos_of: dict[int, int], data: bytes, read_to: int) -> FrameCache:
        """Those of ``pos_of``'s frames whose bytes are in the first ``read_to`` bytes
        of ``data`` (a partial read), as frame address -> (buffer, pos)."""
        flen = self._flen
        return {a: (data, p) for a, p in pos_of.items() if p + flen <= read_to}

    def _prefetch(self, addrs: list[int]) -> FrameCache:
        """Frame address -> (buffer, pos) for ``addrs``, in one vectored read."""
        spans, starts = self._merge(addrs)
        data, k = self.memory.read_ranges_partial(spans)
        at = list(accumulate((n for _, n in spans), initial=0))
        return self._landed(self._landing(spans, starts, at, 0), data, at[k])

    # -- a walk --------------------------------------------------------------------------

    def walk(self, threads: list[ThreadRow], snap: Snapshot) -> tuple[list[WalkResult], None]:
        """Each thread's chain from the prefetch: a thread's own where it was read
        whole, else from whatever frames of the read landed (all threads' together)."""
        cache: FrameCache = {}
        whole: dict[int, dict[int, int]] = {}  # tstate -> its prefetch's positions
        plan = snap.plan
        if plan is not None:
            k, data = snap.read, snap.data
            for _, t, _, spec in plan.slots:
                if spec is not None:
                    if k >= spec.end:
                        whole[t] = spec.pos_of
                    else:
                        cache.update(self._landed(spec.pos_of, data, plan.at[k]))
        late = plan is None
        data = snap.data
        return [
            self._walk_chain(t, frame, cache, late, data, whole.get(t))
            for _, t, _, frame, _, _, _, _, _ in threads
        ], None

    def _walk_chain(
        self,
        tstate: int,
        addr: int,
        cache: FrameCache,
        late: bool,
        data: bytes = b"",
        pos_of: dict[int, int] | None = None,
    ) -> WalkResult:
        """Follow ``f_back`` from ``addr``. A frame is found at ``pos_of[addr]`` in
        ``data`` (this thread's prefetch, read whole), else in ``cache`` as (buffer,
        pos), else read alone. ``late``: nothing was prefetched, so on meeting the last
        walk's chain, read its rest at once.

        Only the frames that changed since the last walk of this thread are parsed: once
        the walk meets a frame of the last chain whose bytes, and those of every frame
        below it, are the same as last time, the rest of the chain is the last one's, a
        walk being a function of those bytes alone (_holding finds how far down they
        are). A CPU-bound thread changes its innermost frame or two between samples, so
        a 50-deep stack costs two frames of Python instead of fifty, and a 3,000-deep
        one a gather and a compare of its frames' bytes instead of 3,000 steps.
        """
        frames: list[Frame] = []
        append = frames.append
        chain: list[int] = []  # this walk's own part, innermost first
        keep = chain.append
        raws: list[bytes] = []  # their bytes
        lposes: list[int | None] = []  # their positions in data, if found there
        flen = self._flen
        unpack = self._unpack
        identity = self._identity
        fidx = self._fidx
        fstart = self._fstart
        frame_type = self._frame_type
        scale = self._lasti_scale
        max_depth = self.max_depth
        last = self._olast.get(tstate)
        hold = _holding(last, data, pos_of, flen) if last is not None and pos_of else 0
        index = last.index if last is not None else {}
        olds = last.rev_addrs if last is not None else []
        late_old = last if late else None
        pos_get = (pos_of or _NOWHERE).get
        end = USER_SPACE_END
        error = None
        truncated = False
        spliced = -1  # the end-position of the last chain the walk took the rest from
        raw_t: tuple = ()
        check_at = CYCLE_CHECK
        for depth in range(max_depth):
            if not addr:
                break
            if depth == check_at:
                check_at += CYCLE_CHECK
                if len(set(chain)) < depth:
                    error = CYCLIC
                    break
            if hold:
                e = index.get(addr)
                if e is not None and e < hold and olds[e] == addr and depth + e < max_depth:
                    spliced = e
                    break
            p = pos_get(addr)
            if p is not None:
                t = unpack(data, p)
                raw = data[p : p + flen]
            else:
                hit = cache.get(addr)
                if hit is None:
                    if addr & 7 or not 0x10000 <= addr < end:
                        error = f"bad frame pointer {addr:#x}"
                        break
                    if late_old is not None and self._back_on(late_old, addr, cache):
                        late_old = None
                        hit = cache.get(addr)
                if hit is not None:
                    buf, q = hit
                    t = unpack(buf, q)
                    raw = buf[q : q + flen]
                else:
                    try:
                        raw = self.memory.read(addr + fstart, flen)
                        t = unpack(raw, 0)
                    except ReadError:
                        error = f"cannot read frame at {addr:#x}"
                        break
            raw_t = t
            if not identity:
                t = (t[fidx[0]], t[fidx[1]], t[fidx[2]], t[fidx[3]])
            ob_type, back, code, lasti = t
            if ob_type != frame_type:
                error = f"not a frame object at {addr:#x}"
                break
            if code & 7 or not 0x10000 <= code < end:
                error = f"bad code pointer {code:#x}"
                break
            keep(addr)
            raws.append(raw)
            lposes.append(p)
            append((code, lasti * scale if lasti >= 0 else NOT_STARTED))
            addr = back
        else:
            truncated = addr != 0
        if spliced >= 0:
            assert last is not None  # hold > 0 comes from it
            self.spliced += 1
            frames += last.frames[len(last.frames) - spliced - 1 :]
        elif error is None and not truncated and frames and self._running_at >= 0:
            # The outermost frame of a whole chain runs (or waits for its callee); one
            # that does not is a suspended generator's, met by a read racing the target.
            if raw_t[self._running_at] != self._running_value:
                error = "torn chain: it ends at a frame that is not running"
        self._keep_prefetch(tstate, chain, last, spliced, pos_of is not None)
        if error is None and not truncated:
            self._olast[tstate] = _OChain.build(
                last, spliced, chain, raws, lposes, frames, pos_of, flen
            )
        else:
            self._olast.pop(tstate, None)
        return tuple(frames), truncated, error, ()

    def _back_on(self, last: _OChain, addr: int, cache: FrameCache) -> bool:
        """A walk with no prefetch met the frame at ``addr``: if it is on the last chain,
        read the rest of that chain at once into ``cache`` (True)."""
        e = last.index.get(addr)
        olds = last.rev_addrs
        if e is not None and e < len(olds) and olds[e] == addr:
            cache.update(self._prefetch(olds[e::-1]))
            return True
        return False

    def _keep_prefetch(
        self, tstate: int, chain: list[int], last: _OChain | None, spliced: int, whole: bool
    ) -> None:
        """The frames to prefetch next time: this chain's, and while they stay few, those
        of recent chains too, so a leaf call's frame object that comes and goes does not
        change what is read (and make the read be planned again) at every sample. Only
        the chain's own after a prefetch that was not read whole (``whole`` False): a
        frame freed since would fail the read at every sample."""
        pre = self._chains.get(tstate)
        if whole and pre is not None and all(a in pre for a in chain):
            return  # its spliced part was in the last chain, hence in pre
        full = set(chain)
        if last is not None and spliced >= 0:
            full.update(last.rev_addrs[: spliced + 1])
        if whole and pre is not None and len(pre) <= 2 * len(full) + 64:
            full |= pre
        if full != pre:
            self._chains[tstate] = full
            self.replan = True

"""Reading every thread's Python stack out of a live CPython process.

One :class:`StackWalker` per target; :meth:`StackWalker.walk` returns, per thread, its
ids, whether it holds the GIL, and its frames innermost first as
``(code object address, instruction offset)`` in the convention of
:mod:`flamekit.codeformat`. Version differences come from the target's
:class:`~flamekit.record.layout.Layout`; the code below never tests a version number.

Speed is the point (a sample every millisecond, in Python), so in the steady state a
walk is ONE system call, however many threads and frames there are. It reads, in one
``process_vm_readv``, everything the previous walk found: the interpreters head, each
interpreter and thread state, the GIL words, and each thread's frames (on 3.11+ the used
part of its current data-stack chunk plus some slack, and frames found outside it such as
C-stack shims and generators; on 3.10 and older the frame objects of its last chain,
neighbours merged into one range). Then it checks that the chain still links up the
same way; whatever changed is re-read (the thread list link by link; a thread's frames
with one more vectored read for all threads; frames not seen before one by one). The
caller's own ranges (``extra``: the code headers it checks every sample) ride along.

Parsing is the other cost, so only what changed is parsed: each thread's last chain is
kept, and where the data stack below a frame holds the same bytes as last time (and the
prefetched frames outside it too) the rest of the chain is taken from it, a walk being a
function of those bytes alone (:class:`_Chain`, :meth:`StackWalker._splice_floor`). On
3.10 and older the same holds for the frame objects of the last chain: their bytes are
gathered from the prefetch and compared with last time's (:class:`_OChain`,
:meth:`StackWalker._holding`).
Likewise for everything before the frames: when the thread list's bytes (interpreter and
thread states, GIL words, current-frame words) are last walk's, so is its parse
(``StackWalker._steady``).

Code objects are not read during a walk (their headers are only copied along). Frames
that are not Python calls are dropped by owner (C-stack and interpreter shims, 3.12+)
and, on 3.13+, by comparing f_executable with ``&_Py_NoneStruct``; every other code
pointer is only checked for shape. The full
``ob_type == &PyCode_Type`` check is part of the per-sample identity check callers run
anyway (``CodeReader.fingerprints`` / ``fingerprint_from`` return None for anything that
is not a code object), so it costs no extra read here.

One call is also what keeps a walk consistent when the target runs while we read
(nonblocking mode): thread state and frames are copied microseconds apart, not a whole
Python loop apart. Anything can still be torn, so every pointer is checked before use,
a chain is cut at ``max_depth`` frames (``truncated``), and a thread whose stack cannot
be read completely comes back with ``error`` set and the frames read so far. Only a
vanished process raises (ProcessGoneError).
"""

from __future__ import annotations

import struct
from itertools import accumulate
from operator import itemgetter
from typing import NamedTuple

from flamekit.codeformat import NOT_STARTED
from flamekit.record.code_reader import _struct_at
from flamekit.record.layout import GIL_CURRENT_SYMBOL, GIL_INTERP, GIL_RUNTIME, LASTI_UNITS
from flamekit.record.proc.memory import ProcessGoneError, ReadError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import (
    CYCLE_CHECK,
    CYCLIC,
    MAX_CHUNKS,
    MAX_DEPTH,
    MAX_INTERPRETERS,
    MAX_OFFSET,
    MAX_OUTSIDE,
    MAX_REGION,
    MAX_TAIL_BYTES,
    MAX_THREADS,
    MERGE_GAP,
    REGION_SLACK,
    USER_SPACE_END,
    Frame,
    ThreadStack,
    WalkResult,
)
from flamekit.record.walk.common import bad_pointer as _bad
from flamekit.record.walk.pthread_tids import PthreadTids

#: Times a walk with a thread whose chain failed (most often torn by the target's running,
#: non-blocking) reads everything again in one call, before retrying thread by thread:
#: on a `yield from` pipeline that keeps relinking its frames, 53-56% of non-blocking
#: ticks failed with none, 24-30% with two.
REWALKS = 2


class _Tail(NamedTuple):
    """The part of a thread's last chain (3.11+) in older data-stack chunks, for the next
    walk to reuse while their bytes stay the same (see StackWalker._walk_iframes)."""

    entry: int  #: the frame the walk left the current chunk at
    first: int  #: the older chunk it went on in
    ranges: tuple[tuple[int, int], ...]  #: the older chunks it loaded
    data: bytes  #: their bytes then
    frames: tuple[Frame, ...]  #: what the walk found in them
    positions: int  #: chain positions it took (shims included): for the depth cap
    chunk_addrs: frozenset[int]  #: addresses of its frames inside the chunks
    outs: tuple[tuple[int, bytes], ...]  #: its frames outside them: (address, bytes)


class _OChain:
    """A thread's last walked chain of frame objects (3.10 and older), kept so the next
    walk parses only the frames that changed (see StackWalker._walk_oframes). Positions
    are counted from the *bottom* (end-position 0 is the outermost frame), so the part a
    later chain shares with this one keeps its numbers."""

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


class _Snapshot:
    """What the first read of a walk returned: the thread list and the prefetched frames."""

    __slots__ = (
        "threads",
        "gil",
        "data",
        "spec",
        "frame_cache",
        "frame_pos",
        "prefetched",
        "control",
        "steady",
    )

    def __init__(self) -> None:
        self.threads: list[tuple[int, int, bytes]] = []  # (interp, tstate, tstate bytes)
        self.gil: dict[int, int] = {}  # interp -> tstate holding its GIL (0: none)
        self.data = b""
        #: 3.11+: tstate -> (cframe addr, its pos, chunk, region pos, region len, outside)
        #: where outside maps frame address -> pos; pos -1 = not read
        self.spec: dict[int, tuple[int, int, int, int, int, dict[int, int]]] = {}
        #: <= 3.10: frame address -> (buffer, pos)
        self.frame_cache: dict[int, tuple[bytes, int]] = {}
        #: <= 3.10, a thread whose prefetch was read whole: tstate -> {frame: pos in data}
        self.frame_pos: dict[int, dict[int, int]] = {}
        self.prefetched = False  #: frames of last walk's chains were read with the list
        #: 3.11+, all of the thread list's ranges read: the bytes everything but the frames
        #: was parsed from (see StackWalker._steady)
        self.control: bytes | None = None
        #: those bytes were last walk's: its parsed threads and frame jobs, to walk again
        self.steady: tuple[list[tuple], list[list]] | None = None


class _Chain:
    """A thread's last walked chain (3.11+), kept so the next walk parses only what
    changed. Per position, indexed from the *bottom* of the chain (end-position 0 is
    the outermost frame): everything about a position depends only on the positions
    below it, so a later chain that shares the bottom part shares these lists' heads."""

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
        self.tail: _Tail | None = None

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
        raws: list[bytes | None],
        frames: tuple[Frame, ...],
        tail: _Tail | None = None,
    ) -> _Chain:
        """This walk's chain: its own ``addrs`` (innermost first) above the bottom ``m``
        positions of ``old``, or above ``tail``, the part it took whole from older chunks
        (one position, not indexed: a walk meets it only through the frames above)."""
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
        else:
            rev_addrs, rev_rem, rev_reach, outs, reach, index = [], [], [], [], 0, {}
            m = 0
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
                outs.append((len(rev_addrs), a, raws[p]))  # type: ignore[arg-type]
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


class StackWalker:
    """Walks all threads of one target. Keeps per-thread caches between walks."""

    def __init__(
        self, target: PythonTarget, *, max_depth: int = MAX_DEPTH, consistent: bool = False
    ) -> None:
        """``consistent``: every walk reads a stopped target (pausing mode), so a chain
        that fails was not torn by a racing read (see _caller_frame)."""
        self.target = target
        self.consistent = consistent
        self.memory = target.memory
        self.max_depth = max_depth
        lay = target.layout
        self.layout = lay
        self.errors = 0  #: threads returned with ``error`` set, over the walker's life
        self.spliced = 0  #: thread walks that reused the bottom of the thread's last chain
        self.steadied = 0  #: walks that reused the last one's parse of the thread list
        self.tail_hits = 0  #: thread walks that reused their last part in older chunks
        self._head_addr = target.interpreters_head_address()
        self._none = target.symbols.get("_Py_NoneStruct", -1)
        self._frame_type = target.symbols.get("PyFrame_Type", 0)

        # Interpreter span: the words we need of a PyInterpreterState.
        lo = min(lay.interp_next, lay.interp_threads_head)
        hi = max(lay.interp_next, lay.interp_threads_head) + 8
        self._interp_lo, self._interp_len = lo, hi - lo
        self._interp_next = lay.interp_next - lo
        self._interp_head = lay.interp_threads_head - lo

        # Thread-state span and a Struct pulling the fields we use out of it.
        tfields = [
            (lay.tstate_next, "Q"),
            (lay.tstate_thread_id, "Q"),
            (lay.tstate_frame, "Q"),
            (lay.tstate_native_thread_id if lay.tstate_native_thread_id is not None else -1, "I"),
            (lay.tstate_datastack_chunk if lay.tstate_datastack_chunk is not None else -1, "Q"),
            (lay.tstate_datastack_top if lay.tstate_datastack_top is not None else -1, "Q"),
            (lay.holds_gil_offset if lay.holds_gil_offset is not None else -1, "I"),
            (lay.tstate_unique_id if lay.tstate_unique_id is not None else -1, "Q"),
        ]
        present = [(o, c) for o, c in tfields if o >= 0]
        self._tstate_struct, idx = _struct_at(present, 0)
        self._tstate_len = max(o + struct.calcsize("<" + c) for o, c in present)
        # For each of the 8 logical fields, its index in the unpacked tuple or -1.
        self._tidx: list[int] = []
        j = 0
        for o, _ in tfields:
            if o >= 0:
                self._tidx.append(idx[j])
                j += 1
            else:
                self._tidx.append(-1)

        # GIL words.
        mode = lay.gil_mode
        self._gil_mode = mode
        self._gil_range: tuple[int, int] | None = None
        if mode == GIL_RUNTIME:
            assert target.runtime is not None and lay.runtime_tstate_current is not None
            self._gil_range = (target.runtime + lay.runtime_tstate_current, 8)
        elif mode == GIL_CURRENT_SYMBOL:
            cur = target.symbols.get("_PyThreadState_Current")
            if cur is not None:
                self._gil_range = (cur, 8)
        self._interp_gil: dict[int, int] = {}  # interp -> its _gil_runtime_state address

        # Frames.
        if lay.frame_objects:
            fields = [(lay.ob_type, "Q"), (lay.frame_back, "Q"), (lay.frame_code, "Q")]
            fields.append((lay.frame_instr, "i"))
            if lay.frame_running is not None:
                fields.append((lay.frame_running, "b"))
            self._fstart = lay.ob_type
        else:
            assert lay.frame_owner is not None
            fields = [(lay.frame_code, "Q"), (lay.frame_back, "Q"), (lay.frame_instr, "Q")]
            fields.append((lay.frame_owner, "B"))
            self._fstart = 0
        self._frame_struct, fidx = _struct_at(fields, self._fstart)
        self._fidx = fidx
        self._fidx_identity = fidx == [0, 1, 2, 3]
        #: <= 3.10: where the unpacked frame holds its "running" byte, and its value then
        self._running_at = fidx[4] if len(fidx) > 4 else -1
        self._running_value = lay.frame_running_value
        self._flen = self._frame_struct.size
        self._lasti_scale = 2 if lay.instr_kind == LASTI_UNITS else 1
        self._tag_mask = ~lay.code_tag_bits
        self._tag_bits = lay.code_tag_bits
        self._skip_owner = lay.owner_skip_from if lay.owner_skip_from is not None else 256
        self._never_outermost = frozenset(lay.never_outermost)
        self._adaptive = lay.code_adaptive or 0
        self._cframe_off = lay.cframe_current_frame
        self._cframe_prev = lay.cframe_previous
        self.entries = 0  #: walks that found their thread entering the eval loop (3.11/3.12)
        self._frame_objects = lay.frame_objects

        # Caches between walks.
        self._interps: list[int] = []
        self._tstates: list[list[int]] = []
        #: <= 3.10: tstate -> the frame objects to prefetch: its last chain's, and those
        #: of recent chains while they are few (a leaf call's frame comes and goes)
        self._chains: dict[int, set[int]] = {}
        #: <= 3.10: tstate -> its last chain, for the next walk to reuse the unchanged part
        self._olast: dict[int, _OChain] = {}
        #: 3.11+: tstate -> (cframe addr, chunk, bytes to read, frames outside the chunk)
        self._spec: dict[int, tuple[int, int, int, list[int]]] = {}
        #: 3.11+: tstate -> its last chain, for the next walk to reuse the unchanged part
        self._last: dict[int, _Chain] = {}
        #: 3.11+: tstate -> the part of its last chain in older data-stack chunks
        self._tails: dict[int, _Tail] = {}
        self._pthread_tids = PthreadTids(self.memory, target.pid)
        #: What _read_fast asks the kernel for, while the thread list and every thread's
        #: prefetch spec stay the same: (ranges, gil ranges, slots, offsets, control
        #: spans); None: build.
        self._ranges: tuple | None = None
        #: 3.11+: (that tuple, control bytes, parsed threads, frame jobs) of the last walk
        #: that needed no second read. Everything a walk derives before following frames
        #: (the thread list, GIL, thread-state fields, where each thread's frames are) is
        #: a function of the control bytes (the thread list's ranges, not the frames'),
        #: so when they come back the same, so does all of that, and only the frames are
        #: walked: a CPU-bound target's thread states rarely change between samples.
        self._steady: tuple | None = None
        #: (stack ranges, extra, both as one tuple) for the read
        self._joined: tuple = ((), (), ())
        #: Ranges the caller wants read in the same system call as the stacks (the code
        #: headers it checks every sample); after a walk, ``extra_data`` holds their bytes
        #: concatenated, or None if this walk did not read them (whole).
        self.extra: tuple[tuple[int, int], ...] = ()
        self.extra_data: bytes | None = None

    @staticmethod
    def _pair_range(base: int, a: int, b: int) -> tuple[int, int]:
        lo = min(a, b)
        return base + lo, max(a, b) + 8 - lo

    # -- public ------------------------------------------------------------------------

    def walk(self) -> list[ThreadStack]:
        """Every thread of every interpreter, with its stack. See ThreadStack."""
        self.extra_data = None
        snap = self._read_fast()
        if snap is None:
            snap = self._read_slow()
        if not snap.threads and snap.steady is None:
            return []
        out = self._walk_frames(snap)
        if snap.steady is None:  # else the same threads as last time
            self._forget_dead_threads({t.tstate for t in out})
        for _ in range(0 if self.consistent else REWALKS):  # a stopped target reads the same
            failed = [n for n, t in enumerate(out) if t.error is not None]
            if not failed:
                break
            again_snap = self._read_fast()
            if again_snap is None:
                break
            again = {t.tstate: t for t in self._walk_frames(again_snap)}
            for n in failed:
                t = again.get(out[n].tstate)
                if t is not None and t.error is None and t.thread_id == out[n].thread_id:
                    out[n] = t._replace(holds_gil=out[n].holds_gil)
        for n, t in enumerate(out):
            if t.error is not None:
                # Most often a torn read of a running thread: look once more, right now.
                again = self._retry(t)
                if again is not None and again.error is None:
                    out[n] = again
                else:
                    self.errors += 1
        return out

    def _retry(self, stack: ThreadStack) -> ThreadStack | None:
        """The stack of one thread, read afresh (thread state, then its frames)."""
        try:
            raw = self.memory.read(stack.tstate, self._tstate_len)
        except ReadError:
            return None
        snap = _Snapshot()
        snap.threads = [(stack.interp, stack.tstate, raw)]
        (again,) = self._walk_frames(snap)
        if again.thread_id != stack.thread_id:
            return None  # the thread state now belongs to another thread
        return again._replace(holds_gil=stack.holds_gil)

    # -- the first read: thread list plus speculation ------------------------------------

    def _gil_ranges(self, interps: list[int]) -> list[tuple[int, int]]:
        lay = self.layout
        if self._gil_mode == GIL_INTERP:
            out = []
            for i in interps:
                g = self._interp_gil.get(i)
                if g is None:
                    g = self._read_ptr(i + lay.interp_ceval_gil)  # type: ignore[operator]
                    if _bad(g):
                        raise ReadError(f"bad GIL pointer {g:#x}", g)
                    self._interp_gil[i] = g
                out.append(self._pair_range(g, lay.gil_last_holder, lay.gil_locked))  # type: ignore[arg-type]
            return out
        return [self._gil_range] if self._gil_range is not None else []

    def _thread_spec(self, t: int, ranges: list[tuple[int, int]]) -> tuple | None:
        """Append the ranges that prefetch thread ``t``'s frames; return how to find them."""
        if self._frame_objects:
            chain = self._chains.get(t)
            if not chain:
                return None
            spans, starts = self._merge(chain)
            n0 = len(ranges)
            ranges += spans
            return (n0, spans, starts)
        s = self._spec.get(t)
        if s is None:
            return None
        cframe, chunk, length, outside = s
        n0 = len(ranges)
        if cframe:
            ranges.append((cframe + self._cframe_off, 8))  # type: ignore[operator]
        if chunk:
            ranges.append((chunk, length))
        flen = self._flen
        ranges += [(a, flen) for a in outside]
        return (n0, cframe, chunk, length, outside)

    def _read_fast(self) -> _Snapshot | None:
        """The one-read walk start, valid when the thread list has not changed.

        Each thread's frames are read right after its thread state, so the two are
        copied as close together in time as the kernel allows.
        """
        interps = self._interps
        if not interps:
            return None
        tstates = self._tstates
        ilen = self._interp_len
        tlen = self._tstate_len
        cached = self._ranges
        if cached is None:
            try:
                gil_ranges = self._gil_ranges(interps)
            except ReadError:
                return None
            ranges = [(self._head_addr, 8)]
            ranges += [(i + self._interp_lo, ilen) for i in interps]
            ranges += gil_ranges
            slots = []  # per thread: (interp, tstate, its range index, spec)
            for n, ts in enumerate(tstates):
                for t in ts:
                    slots.append((interps[n], t, len(ranges), None))
                    ranges.append((t, tlen))
                    spec = self._thread_spec(t, ranges)
                    if spec is not None:
                        slots[-1] = slots[-1][:3] + (spec,)
            at = [0] * (len(ranges) + 1)
            pos = 0
            for i, (_, length) in enumerate(ranges):
                at[i] = pos
                pos += length
            at[-1] = pos
            if self._frame_objects:
                slots = [s if s[3] is None else s[:3] + (self._positions(s[3], at),) for s in slots]
            cached = self._ranges = (
                ranges,
                gil_ranges,
                slots,
                at,
                self._control_spans(slots, ranges, at),
            )
        ranges, gil_ranges, slots, at, control = cached
        extra = self.extra
        joined = self._joined
        if joined[0] is not ranges or joined[1] is not extra:
            joined = self._joined = (ranges, extra, tuple(ranges) + tuple(extra))
        data, k = self.memory.read_ranges_partial(joined[2])
        if not slots or k <= slots[-1][2]:
            return None
        if extra and k == len(ranges) + len(extra):
            self.extra_data = data[at[-1] :]
        if control is not None and k >= len(ranges):
            ctl = b"".join([data[a:b] for a, b in control])
            steady = self._steady
            if steady is not None and steady[0] is cached and steady[1] == ctl:
                snap = _Snapshot()
                snap.data = data
                snap.prefetched = True
                snap.steady = steady[2], steady[3]
                self.steadied += 1
                return snap
        else:
            ctl = None
        (head,) = struct.unpack_from("<Q", data, 0)
        if head != interps[0]:
            return None
        for n, _ in enumerate(interps):
            nxt, first = self._unpack_interp(data, at[1 + n])
            if nxt != (interps[n + 1] if n + 1 < len(interps) else 0):
                return None
            if first != (tstates[n][0] if tstates[n] else 0):
                return None
        snap = _Snapshot()
        snap.data = data
        snap.prefetched = True
        snap.control = ctl
        snap.gil = self._parse_gil(data, at[1 + len(interps)], gil_ranges, interps)
        nxt_i = self._tidx[0]
        unpack = self._tstate_struct.unpack_from
        out = snap.threads
        j = 0
        for ts in tstates:
            for m, t in enumerate(ts):
                interp, _, r, spec = slots[j]
                j += 1
                p = at[r]
                if unpack(data, p)[nxt_i] != (ts[m + 1] if m + 1 < len(ts) else 0):
                    return None
                out.append((interp, t, data[p : p + tlen]))
                if spec is not None:
                    self._place(snap, t, spec, ranges, at, k)
        return snap

    def _control_spans(
        self, slots: list[tuple], ranges: list[tuple[int, int]], at: list[int]
    ) -> list[tuple[int, int]] | None:
        """Where in the read's bytes the control ranges are (3.11+): all ranges up to the
        first thread state, then each thread state and the current-frame word after it,
        as (start, end) pairs with neighbours merged. None on 3.10 and older."""
        if self._frame_objects or not slots:
            return None
        idx = list(range(slots[0][2]))
        for _, _, r, spec in slots:
            idx.append(r)
            if spec is not None and spec[1]:  # (n0, cframe, ...): ranges[n0] is its word
                idx.append(spec[0])
        spans: list[tuple[int, int]] = []
        for i in idx:
            a, b = at[i], at[i] + ranges[i][1]
            if spans and spans[-1][1] == a:
                spans[-1] = (spans[-1][0], b)
            else:
                spans.append((a, b))
        return spans

    def _positions(self, spec: tuple, at: list[int]) -> tuple:
        """A <= 3.10 prefetch spec with where each frame lands in the read's bytes:
        (first range, spans, span starts, {frame: pos}, end range). Made once per read
        layout, not per walk."""
        n0, spans, starts = spec
        return (n0, spans, starts, self._landing(spans, starts, at, n0), n0 + len(spans))

    def _landing(
        self, spans: list[tuple[int, int]], starts: list[int], at: list[int], n0: int
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

    def _landed(
        self, pos_of: dict[int, int], data: bytes, read_to: int
    ) -> dict[int, tuple[bytes, int]]:
        """Those of ``pos_of``'s frames whose bytes are in the first ``read_to`` bytes
        of ``data`` (a partial read), as frame address -> (buffer, pos)."""
        flen = self._flen
        return {a: (data, p) for a, p in pos_of.items() if p + flen <= read_to}

    def _place(
        self, snap: _Snapshot, t: int, spec: tuple, ranges: list, at: list[int], k: int
    ) -> None:
        """Record where thread ``t``'s prefetched frames landed (ranges < k were read)."""
        data = snap.data
        if self._frame_objects:
            n0, spans, starts, pos_of, end = spec
            if k >= end:
                snap.frame_pos[t] = pos_of
                return
            snap.frame_cache.update(self._landed(pos_of, data, at[k]))
            return
        n0, cframe, chunk, length, outside = spec
        r = n0
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
        snap.spec[t] = (cframe, cpos, chunk, rpos, length, known)

    def _unpack_interp(self, data: bytes, pos: int) -> tuple[int, int]:
        (nxt,) = struct.unpack_from("<Q", data, pos + self._interp_next)
        (first,) = struct.unpack_from("<Q", data, pos + self._interp_head)
        return nxt, first

    def _parse_gil(
        self, data: bytes, pos: int, ranges: list[tuple[int, int]], interps: list[int]
    ) -> dict[int, int]:
        """{interp: tstate holding its GIL, 0 if none} from the GIL words read at ``pos``."""
        lay = self.layout
        mode = self._gil_mode
        if mode in (GIL_CURRENT_SYMBOL, GIL_RUNTIME):  # one word: the running thread state
            if not ranges:
                return {}
            (cur,) = struct.unpack_from("<Q", data, pos)
            return {i: cur for i in interps}
        if mode != GIL_INTERP:
            return {}
        holder_off, locked_off = lay.gil_last_holder, lay.gil_locked
        base = min(holder_off, locked_off)  # type: ignore[type-var]
        out = {}
        for n, i in enumerate(interps):
            p = pos + n * ranges[0][1]
            (holder,) = struct.unpack_from("<Q", data, p + holder_off - base)  # type: ignore[operator]
            (locked,) = struct.unpack_from("<i", data, p + locked_off - base)  # type: ignore[operator]
            out[i] = holder if locked == 1 else 0
        return out

    def _read_ptr(self, addr: int) -> int:
        (v,) = struct.unpack("<Q", self.memory.read(addr, 8))
        return v

    def _read_slow(self) -> _Snapshot:
        """The thread list link by link (first walk, or after threads came or went)."""
        mem = self.memory
        snap = _Snapshot()
        interps: list[int] = []
        tstates: list[list[int]] = []
        out = snap.threads
        try:
            interp = self._read_ptr(self._head_addr)
            while interp and len(interps) < MAX_INTERPRETERS:
                if _bad(interp) or interp in interps:
                    break
                raw = mem.read(interp + self._interp_lo, self._interp_len)
                nxt, t = self._unpack_interp(raw, 0)
                interps.append(interp)
                ts: list[int] = []
                tstates.append(ts)
                seen = set()
                while t and len(ts) < MAX_THREADS and not _bad(t) and t not in seen:
                    seen.add(t)
                    traw = mem.read(t, self._tstate_len)
                    ts.append(t)
                    out.append((interp, t, traw))
                    t = self._tstate_struct.unpack_from(traw, 0)[self._tidx[0]]
                interp = nxt
        except ReadError:
            # Torn list (a thread exiting as we read): use what we have, retry next time.
            self._interps, self._tstates = [], []
            self._ranges = None
            return snap
        self._interps, self._tstates = interps, tstates
        self._ranges = None
        self._interp_gil = {i: g for i, g in self._interp_gil.items() if i in interps}
        if interps:
            try:
                ranges = self._gil_ranges(interps)
                data = mem.read_ranges(ranges) if ranges else b""
                snap.gil = self._parse_gil(data, 0, ranges, interps)
            except ReadError:
                pass
        return snap

    # -- frames ------------------------------------------------------------------------

    def _walk_frames(self, snap: _Snapshot) -> list[ThreadStack]:
        lay = self.layout
        ti = self._tidx
        unpack = self._tstate_struct.unpack_from
        gil = snap.gil
        if snap.steady is not None:
            parsed = snap.steady[0]
            stacks = self._walk_interpreter_frames(parsed, snap)
            return [
                ThreadStack(p[2], p[4], p[7], frames, truncated, error, p[1], p[0])
                for p, (frames, truncated, error) in zip(parsed, stacks)
            ]
        parsed = []
        for interp, t, raw in snap.threads:
            v = unpack(raw, 0)
            if ti[6] >= 0:
                word = v[ti[6]]
                if lay.holds_gil_bit is not None:
                    holds = bool(word >> lay.holds_gil_bit & 1)
                else:
                    holds = word == 1
            else:
                holds = gil.get(interp, 0) == t
            parsed.append(
                (
                    interp,
                    t,
                    v[ti[1]],  # thread id
                    v[ti[2]],  # frame (3.11/3.12: cframe)
                    v[ti[3]] if ti[3] >= 0 else None,  # native tid
                    v[ti[4]] if ti[4] >= 0 else 0,  # datastack chunk
                    v[ti[5]] if ti[5] >= 0 else 0,  # datastack top
                    holds,
                    v[ti[7]] if ti[7] >= 0 else 0,  # <= 3.10: the tstate's unique id
                )
            )
        if self._frame_objects:
            cache = snap.frame_cache
            late = not snap.prefetched
            fpos = snap.frame_pos
            data = snap.data
            stacks = [
                self._walk_oframes(p[1], p[3], cache, late, data, fpos.get(p[1])) for p in parsed
            ]
            natives = self._pthread_tids(parsed)
        else:
            stacks = self._walk_interpreter_frames(parsed, snap)
            natives = [p[4] for p in parsed]
        out = [
            ThreadStack(p[2], native, p[7], frames, truncated, error, p[1], p[0])
            for p, (frames, truncated, error), native in zip(parsed, stacks, natives)
        ]
        return out

    def _forget_dead_threads(self, live: set[int]) -> None:
        for cache in (self._chains, self._olast, self._spec, self._last, self._tails):
            if len(cache) > len(live):
                for t in [t for t in cache if t not in live]:
                    del cache[t]  # type: ignore[attr-defined]
                self._ranges = None

    # 3.11+ ---------------------------------------------------------------------------

    def _walk_interpreter_frames(self, parsed: list[tuple], snap: _Snapshot) -> list[WalkResult]:
        """Use the prefetched current frame and data stack where they are still right;
        read the rest for all threads in one more call; then walk each chain."""
        data = snap.data
        if snap.steady is not None:
            return self._run_jobs(snap.steady[1], data, b"", 0)
        cf_off = self._cframe_off
        spec = snap.spec
        ranges: list[tuple[int, int]] = []
        jobs = []
        for p in parsed:
            t, frame, chunk, top = p[1], p[3], p[5], p[6]
            s = spec.get(t)
            cframe = 0
            need_cframe = False
            if cf_off is not None:
                cframe = frame if frame and not _bad(frame) else 0
                frame = 0
                if cframe:
                    if s is not None and s[0] == cframe and s[1] >= 0:
                        (frame,) = struct.unpack_from("<Q", data, s[1])
                    else:
                        need_cframe = True
                        ranges.append((cframe + cf_off, 8))
            size = top - chunk
            if not (chunk and not _bad(chunk) and 0 < size <= MAX_REGION):
                size = 0
            rpos = -1
            need_region = False
            if size:
                if s is not None and s[2] == chunk and s[3] >= 0 and size <= s[4]:
                    rpos = s[3]
                else:
                    need_region = True
                    ranges.append((chunk, size))
            known = s[5] if s is not None else {}
            jobs.append([t, cframe, frame, need_cframe, chunk, size, rpos, need_region, known])
        data2 = b""
        done = 0
        if ranges:
            data2, done = self.memory.read_ranges_partial(ranges)
        elif snap.control is not None:
            self._steady = (self._ranges, snap.control, parsed, jobs)
        return self._run_jobs(jobs, data, data2, done)

    def _run_jobs(self, jobs: list[list], data: bytes, data2: bytes, done: int) -> list[WalkResult]:
        """Walk each thread's chain where its job says its frames are (``data``: the
        first read; ``data2``: the second, ``done`` of its ranges read)."""
        cf_off = self._cframe_off
        out = []
        pos = 0
        r = 0
        for t, cframe, frame, need_cframe, chunk, size, rpos, need_region, known in jobs:
            error = None
            if need_cframe:
                if r < done:
                    (frame,) = struct.unpack_from("<Q", data2, pos)
                else:
                    try:
                        frame = self._read_ptr(cframe + cf_off)  # type: ignore[operator]
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
                out.append(((), False, error))
                continue
            result, outside = self._walk_iframes(t, frame, chunk, buf, rpos, size, data, known)
            failed = result[2] is not None and (self.consistent or not result[0])
            caller = self._caller_frame(cframe) if failed and cframe else None
            if caller is not None:
                again = self._walk_iframes(t, caller, chunk, buf, rpos, size, data, known)
                if again[0][2] is None:
                    result, outside = again
                    self.entries += 1
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
            if _bad(prev):
                return None
            frame = self._read_ptr(prev + self._cframe_off)  # type: ignore[operator]
        except ReadError:
            return None
        return None if frame and _bad(frame) else frame

    def _remember(
        self, t: int, cframe: int, chunk: int, buf: bytes, rpos: int, size: int, outside: list
    ) -> None:
        """What to prefetch for this thread next time."""
        length = 0
        if size:
            cap = MAX_REGION
            lay = self.layout
            if rpos >= 0:
                (total,) = struct.unpack_from("<Q", buf, rpos + lay.chunk_size)  # type: ignore[operator]
                if size <= total <= MAX_REGION:
                    cap = total
            length = min(size + REGION_SLACK, cap)
        spec = (cframe, chunk if length else 0, length, outside[:MAX_OUTSIDE])
        old = self._spec.get(t)
        if old != spec:
            if (
                old is not None
                and old[:2] == spec[:2]
                and old[3] == spec[3]
                and size + REGION_SLACK // 2 <= old[2] <= length + REGION_SLACK
            ):
                return  # the last read still covers the stack with room: keep it as it is
            self._spec[t] = spec
            self._ranges = None

    def _walk_iframes(
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
        unpack = self._frame_struct.unpack_from
        identity = self._fidx_identity
        fidx = self._fidx
        skip_owner = self._skip_owner
        tag_bits = self._tag_bits
        tag_mask = self._tag_mask
        adaptive = self._adaptive
        none = self._none
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
        index = old.index if old is not None else None
        olds = old.rev_addrs if old is not None else None
        extra: list[tuple[int, int, bytes]] = []  # older chunks loaded in this walk
        xlo, xhi, xbuf = 1, 0, b""  # the one of them the last frame was found in
        next_chunk = -1  # unknown until needed
        loaded = 0  # bytes of older chunks loaded
        outside: list[int] = []
        error = None
        truncated = False
        # Per position of this walk's own part of the chain (innermost first): address,
        # kind (0 in the region, 1 prefetched outside it, 2 read otherwise), frames so far.
        paddrs: list[int] = []
        pkinds: list[int] = []
        pcount: list[int] = []
        praws: list[bytes | None] = []  # kind 1: the frame's bytes
        spliced = 0  # end-positions of the last chain reused (0: none)
        tail_at: tuple | None = None  # where this walk entered older chunks
        tail_used = False
        check_at = CYCLE_CHECK
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
                    q = index.get(addr)  # type: ignore[union-attr]
                    if q is not None and q < floor and olds[q] == addr:  # type: ignore[index]
                        floor = self._splice_floor(old, q, buf, rpos, size, kbuf, known)
                        tail = old.tail  # type: ignore[union-attr]
                        below = q + 1 + (tail.positions - 1 if tail is not None else 0)
                        if floor > q and tail is not None:
                            # the walk from q would go on into it: it must hold too
                            if (
                                self._tail_holds(
                                    tstate, tail.entry, tail.first, depth + q, known, kbuf, lo, hi
                                )
                                is not tail
                            ):
                                floor = 0
                        if floor > q and depth + below <= self.max_depth:
                            spliced = q + 1
                            break
                        if floor > q:
                            floor = 0  # the depth cap: no splice below would fit either
                t = unpack(buf, addr - shift)
                kind = 0
                raw = None
            else:
                t = raw = None
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
                        for b, top, d in extra:
                            if b <= addr <= top:
                                xlo, xhi, xbuf = b, top, d
                                t = unpack(d, addr - b)
                                break
                    if t is None:
                        if next_chunk == -1:
                            next_chunk = self._chunk_previous(buf, rpos)
                            tail_at = (len(paddrs), len(frames), addr, next_chunk)
                            tail = self._tail_holds(
                                tstate, addr, next_chunk, depth, known, kbuf, lo, hi
                            )
                            if tail is not None:
                                frames += tail.frames
                                outside += [a for a, _ in tail.outs]  # found prefetched
                                addr = 0
                                tail_used = True
                                break
                        while next_chunk:
                            if len(extra) >= MAX_CHUNKS or loaded > MAX_TAIL_BYTES:
                                next_chunk = 0  # a corrupt (cyclic) chunk list, or no stack
                                break
                            got = self._load_chunk(next_chunk)
                            if got is None:
                                next_chunk = 0
                                break
                            b, d, next_chunk = got
                            top = b + len(d) - flen
                            extra.append((b, top, d))
                            loaded += len(d)
                            if b <= addr <= top:
                                xlo, xhi, xbuf = b, top, d
                                t = unpack(d, addr - b)
                                break
                    if t is None:
                        try:
                            raw = self.memory.read(addr, flen)  # kept for _keep_tail
                            t = unpack(raw, 0)
                        except ReadError:
                            error = f"cannot read frame at {addr:#x}"
                            break
                        outside.append(addr)
            paddrs.append(addr)
            pkinds.append(kind)
            pcount.append(len(frames))
            praws.append(raw)
            if not identity:
                t = (t[fidx[0]], t[fidx[1]], t[fidx[2]], t[fidx[3]])
            code, addr, instr, owner = t
            if owner >= skip_owner:
                continue  # a C-stack / interpreter shim, not a Python call
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
        if error is None and not truncated and not spliced and not tail_used and paddrs:
            if owner in self._never_outermost:  # the last frame the loop unpacked
                error = "torn chain: it ends at a frame no thread's stack ends at"
        if spliced:
            self.spliced += 1
            rem = old.rev_rem[spliced - 1]  # type: ignore[union-attr]
            if rem:
                frames += old.frames[-rem:]  # type: ignore[union-attr]
            outside += [a for q, a, _ in reversed(old.outs) if q < spliced]  # type: ignore[union-attr]
            if old.tail is not None:  # type: ignore[union-attr]
                outside += [a for a, _ in old.tail.outs]  # type: ignore[union-attr]
        result = (tuple(frames), truncated, error)
        tail = None
        if tail_used:
            tail = self._tails[tstate]  # kept as it is, and the bottom of this chain
        elif not (spliced and old.tail is not None):  # type: ignore[union-attr]
            whole = error is None and not truncated and not spliced
            self._keep_tail(tstate, tail_at, whole, extra, paddrs, pkinds, praws, frames)
        if (
            not spliced
            and not tail_used
            and 2 in pkinds
            and 0 not in pkinds[len(pkinds) - pkinds[::-1].index(2) :]
        ):
            # No frame of the region lies below the last one read from elsewhere (a deep
            # stack's older chunks): a later walk could splice onto nothing of this chain
            # (see _Chain.solid), and building it would cost a step per frame.
            self._last.pop(tstate, None)
        elif error is None and not truncated and rpos >= 0:
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
            )
        else:
            self._last.pop(tstate, None)
        return result, outside

    def _tail_holds(
        self,
        tstate: int,
        entry: int,
        first: int,
        depth: int,
        known: dict[int, int],
        kbuf: bytes,
        lo: int,
        hi: int,
    ) -> _Tail | None:
        """The last walk's part of this thread's chain in older chunks, if it is this
        walk's too: entered at the same frame, from the same chunk, with room under the
        depth cap; none of its frames where this walk would look first (the current
        region, or prefetched, but for its frames from outside the chunks); and the same
        bytes in its chunks and in those frames (taken from the prefetch where a walk
        would take them from, else read along with the chunks)."""
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
        flen = self._flen
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
        self.tail_hits += 1
        return tail

    def _keep_tail(
        self,
        tstate: int,
        tail_at: tuple | None,
        whole: bool,
        extra: list[tuple[int, int, bytes]],
        paddrs: list[int],
        pkinds: list[int],
        praws: list[bytes | None],
        frames: list[Frame],
    ) -> None:
        """Keep the part of this walk's chain in older chunks for the next walk (see
        _walk_iframes), or forget the last one. Its frames found outside the chunks (an
        entry frame on the C stack, a generator's) are kept with their bytes: the next
        walk has them prefetched and must find the same there.

        Not when the walk came back into the current region after entering them (the
        frame it entered at was one outside the data stack, not prefetched, above more
        of the region): the tail's check covers its chunks and outside frames, not the
        region's, whose changes would go unseen."""
        if tail_at is not None and whole and extra and 0 not in pkinds[tail_at[0] :]:
            p0, f0, entry, first = tail_at
            ranges = tuple((b, len(d)) for b, _, d in extra)
            if sum(n for _, n in ranges) <= MAX_TAIL_BYTES:
                addrs = paddrs[p0:]
                outs = tuple((a, r) for a, r in zip(addrs, praws[p0:]) if r is not None)
                self._tails[tstate] = _Tail(
                    entry,
                    first,
                    ranges,
                    b"".join(d for _, _, d in extra),
                    tuple(frames[f0:]),
                    len(addrs),
                    frozenset(addrs).difference(a for a, _ in outs),
                    outs,
                )
                return
        self._tails.pop(tstate, None)

    @staticmethod
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

    def _chunk_previous(self, buf: bytes, rpos: int) -> int:
        lay = self.layout
        if rpos < 0 or len(buf) < rpos + lay.chunk_data:  # type: ignore[operator]
            return 0
        (prev,) = struct.unpack_from("<Q", buf, rpos + lay.chunk_previous)  # type: ignore[operator]
        return prev

    def _load_chunk(self, chunk: int) -> tuple[int, bytes, int] | None:
        """(base, used bytes, previous chunk) of an older data-stack chunk, or None."""
        lay = self.layout
        if _bad(chunk):
            return None
        try:
            head = self.memory.read(chunk, lay.chunk_data)  # type: ignore[arg-type]
            (prev,) = struct.unpack_from("<Q", head, lay.chunk_previous)  # type: ignore[arg-type]
            (size,) = struct.unpack_from("<Q", head, lay.chunk_size)  # type: ignore[arg-type]
            (top,) = struct.unpack_from("<Q", head, lay.chunk_top)  # type: ignore[arg-type]
            used = lay.chunk_data + 8 * top  # type: ignore[operator]
            if not 0 < used <= min(size, MAX_REGION):
                return None
            return chunk, self.memory.read(chunk, used), prev
        except ReadError:
            return None

    # <= 3.10 -------------------------------------------------------------------------

    def _merge(self, addrs: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
        """Frame spans at ``addrs`` as few ranges: (ranges, sorted span starts).

        Frame objects of similar size come from the same allocator pools, so most of a
        chain sits in a few runs of memory: one iovec per run beats one per frame.
        """
        flen = self._flen
        fstart = self._fstart
        starts = sorted({a + fstart for a in addrs})
        spans: list[tuple[int, int]] = []
        lo = starts[0]
        hi = lo + flen
        for s in starts:
            if s - hi > MERGE_GAP:
                spans.append((lo, hi - lo))
                lo = s
            hi = s + flen
        spans.append((lo, hi - lo))
        return spans, starts

    def _prefetch(self, addrs: list[int]) -> dict[int, tuple[bytes, int]]:
        """Frame address -> (buffer, pos) for ``addrs``, in one vectored read."""
        spans, starts = self._merge(addrs)
        data, k = self.memory.read_ranges_partial(spans)
        at = list(accumulate((n for _, n in spans), initial=0))
        return self._landed(self._landing(spans, starts, at, 0), data, at[k])

    def _walk_oframes(
        self,
        tstate: int,
        addr: int,
        cache: dict[int, tuple[bytes, int]],
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
        unpack = self._frame_struct.unpack_from
        fidx = self._fidx
        identity = self._fidx_identity
        flen = self._flen
        fstart = self._fstart
        frame_type = self._frame_type
        scale = self._lasti_scale
        max_depth = self.max_depth
        last = self._olast.get(tstate)
        hold = self._holding(last, data, pos_of) if last is not None and pos_of else 0
        index = last.index if last is not None else {}
        olds = last.rev_addrs if last is not None else []
        late_old = last if late else None
        pos_get = pos_of.get if pos_of else {}.get
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
                    if late_old is not None:
                        e = late_old.index.get(addr)
                        olds_late = late_old.rev_addrs
                        if e is not None and e < len(olds_late) and olds_late[e] == addr:
                            # No prefetch this walk, but back on a known chain: read its rest.
                            cache.update(self._prefetch(olds_late[e::-1]))
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
            assert last is not None
            self.spliced += 1
            frames += last.frames[len(last.frames) - spliced - 1 :]
        elif error is None and not truncated and frames and self._running_at >= 0:
            # The outermost frame of a whole chain runs (or waits for its callee); one
            # that does not is a suspended generator's, met by a read racing the target.
            if raw_t[self._running_at] != self._running_value:
                error = "torn chain: it ends at a frame that is not running"
        self._keep_prefetch(tstate, chain, last, spliced, pos_of is not None)
        if error is None and not truncated:
            self._olast[tstate] = self._ochain(last, spliced, chain, raws, lposes, frames, pos_of)
        else:
            self._olast.pop(tstate, None)
        return tuple(frames), truncated, error

    def _holding(self, last: _OChain, data: bytes, pos_of: dict[int, int]) -> int:
        """How many frames at the bottom of ``last`` have the same bytes in this walk's
        prefetch (``data``, frames at ``pos_of``) as when it was walked: one gather of
        the chain's frames and a few compares of its bytes' tails (the same tail from
        one frame means the same from every frame below it, so a binary search)."""
        slices = last.slices
        flen = self._flen
        if last.pos_of is not pos_of or slices is None:
            lpos = [pos_of.get(a) for a in reversed(last.rev_addrs)]
            if None in lpos:
                return 0
            slices = [slice(p, p + flen) for p in lpos]  # type: ignore[operator]
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

    def _ochain(
        self,
        last: _OChain | None,
        spliced: int,
        chain: list[int],
        raws: list[bytes],
        lposes: list[int | None],
        frames: list[Frame],
        pos_of: dict[int, int] | None,
    ) -> _OChain:
        """This walk's chain: its own ``chain`` above the bottom ``spliced + 1`` positions
        of ``last`` (none if ``spliced`` is -1)."""
        flen = self._flen
        if last is not None and spliced >= 0:
            m = spliced + 1
            rev = last.rev_addrs[:m]
            index = last.index
            raw = b"".join(raws) + last.raw[len(last.raw) - m * flen :]
            tail = last.slices
            ok = last.pos_of is pos_of and tail is not None
            slices_tail = tail[len(tail) - m :] if ok else None  # type: ignore[index]
        else:
            rev, index, raw, slices_tail = [], {}, b"".join(raws), []
        base = len(rev)
        rev.extend(reversed(chain))
        index.update(zip(reversed(chain), range(base, len(rev))))
        if len(index) > 2 * len(rev) + 64:  # stale entries from chains long gone
            index = dict(zip(rev, range(len(rev))))
        slices = None
        if pos_of is not None and slices_tail is not None and None not in lposes:
            slices = [slice(p, p + flen) for p in lposes] + slices_tail  # type: ignore[operator]
        return _OChain(rev, index, tuple(frames), raw, pos_of, slices)

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
            self._ranges = None


def walk_once(pid: int) -> list[ThreadStack]:
    """Attach, walk every thread once, detach: for tools and tests, not for sampling."""
    from flamekit.record.target import open_target

    target = open_target(pid)
    try:
        return StackWalker(target).walk()
    finally:
        target.close()


__all__ = [
    "CYCLE_CHECK",
    "MAX_DEPTH",
    "ProcessGoneError",
    "StackWalker",
    "ThreadStack",
    "walk_once",
]

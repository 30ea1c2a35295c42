"""Reading every thread's Python stack out of a live CPython process.

One :class:`StackWalker` per target; :meth:`StackWalker.walk` returns, per thread, its
ids, whether it holds the GIL, and its frames innermost first as
``(code object address, instruction offset)`` in the convention of
:mod:`flamekit.codeformat`. Version differences come from the target's
:class:`~flamekit.record.layout.Layout`; the code below never tests a version number.

Speed is the point (a sample every millisecond, in Python), so a walk costs a handful
of system calls however deep the stacks are:

1. the thread list: one vectored read fetches the interpreters head, every interpreter
   and thread state seen last time, and the GIL words; if the chain still links up the
   same way (it nearly always does) that is the whole list, else it is re-read link by
   link;
2. the frames: on 3.11+ frames live in per-thread "data stack" chunks, so the used part
   of each thread's current chunk is read in one go (all threads in one call) and walked
   in local memory; frames elsewhere (generators, older chunks) are read as needed. On
   3.10 and older, frames are separate heap objects: the chain seen last time for that
   thread is prefetched in one vectored read and only new frames are read one by one.

The target is usually running while we read (nonblocking mode, or between ptrace stops
of other threads), so anything can be torn: every pointer is checked before use, a
chain is cut at ``max_depth`` frames (reported as ``truncated``), and a thread whose
stack cannot be read completely comes back with ``error`` set and the frames read so far.
Only a vanished process raises (ProcessGoneError).
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from flamekit.codeformat import NOT_STARTED
from flamekit.record.code import _struct_at
from flamekit.record.interpreter import PythonTarget
from flamekit.record.layout import (
    GIL_CURRENT_SYMBOL,
    GIL_INTERP,
    GIL_RUNTIME,
    INSTR_POINTER,
    LASTI_UNITS,
)
from flamekit.record.memory import ProcessGoneError, ReadError

#: Default cap on frames per thread: deeper chains are cut and flagged ``truncated``.
MAX_DEPTH = 4096
#: Most threads per interpreter / interpreters we follow before calling the list corrupt.
MAX_THREADS = 100_000
MAX_INTERPRETERS = 1024
#: Largest data-stack region read in one piece (bigger means a corrupt pointer).
MAX_REGION = 8 << 20
#: glibc (x86_64, 2.2x-2.3x): offset of the kernel tid inside struct pthread.
PTHREAD_TID_OFFSET = 0x2D0
#: Offsets beyond this are not believable for real bytecode (a torn read).
MAX_OFFSET = 1 << 26
_USER_SPACE_END = 1 << 47
#: Frames outside the data stack (shims on the C stack, generators) remembered per thread
#: and prefetched with the data stack next time.
MAX_OUTSIDE = 16
#: Frame objects closer than this are read as one range (bytes are cheaper than iovecs).
MERGE_GAP = 1536


class ThreadStack(NamedTuple):
    """One thread's stack at one instant."""

    thread_id: int  #: threading.get_ident() in the target (the pthread_t)
    native_tid: int | None  #: kernel tid; None if it could not be established
    holds_gil: bool
    frames: list[tuple[int, int]]  #: (code address, instruction offset), innermost first
    truncated: bool  #: the chain was longer than max_depth (or cyclic) and was cut
    error: str | None  #: why ``frames`` is incomplete, if it is
    tstate: int  #: address of the PyThreadState (stable while the thread lives)
    interp: int  #: address of its PyInterpreterState


def _bad(p: int) -> bool:
    return p & 7 != 0 or p <= 0xFFFF or p >= _USER_SPACE_END


class StackWalker:
    """Walks all threads of one target. Keeps per-thread caches between walks."""

    def __init__(self, target: PythonTarget, *, max_depth: int = MAX_DEPTH) -> None:
        self.target = target
        self.memory = target.memory
        self.max_depth = max_depth
        lay = target.layout
        self.layout = lay
        self.errors = 0  #: threads returned with ``error`` set, over the walker's life
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
        ]
        present = [(o, c) for o, c in tfields if o >= 0]
        self._tstate_struct, idx = _struct_at(present, 0)
        self._tstate_len = max(o + struct.calcsize("<" + c) for o, c in present)
        # For each of the 7 logical fields, its index in the unpacked tuple or -1.
        self._tidx = []
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
            assert target.runtime is not None
            assert lay.runtime_gil_locked is not None and lay.runtime_gil_last_holder is not None
            self._gil_range = self._pair_range(
                target.runtime, lay.runtime_gil_last_holder, lay.runtime_gil_locked
            )
        elif mode == GIL_CURRENT_SYMBOL:
            cur = target.symbols.get("_PyThreadState_Current")
            if cur is not None:
                self._gil_range = (cur, 8)
        self._interp_gil: dict[int, int] = {}  # interp -> its _gil_runtime_state address

        # Frames.
        if lay.frame_objects:
            fields = [(lay.ob_type, "Q"), (lay.frame_back, "Q"), (lay.frame_code, "Q")]
            fields.append((lay.frame_instr, "i"))
            self._fstart = lay.ob_type
        else:
            assert lay.frame_owner is not None
            fields = [(lay.frame_code, "Q"), (lay.frame_back, "Q"), (lay.frame_instr, "Q")]
            fields.append((lay.frame_owner, "B"))
            self._fstart = 0
        self._frame_struct, fidx = _struct_at(fields, self._fstart)
        self._fidx = fidx
        self._fidx_identity = fidx == [0, 1, 2, 3]
        self._flen = self._frame_struct.size
        self._lasti_scale = 2 if lay.instr_kind == LASTI_UNITS else 1
        self._tag_mask = ~lay.code_tag_bits
        self._tag_bits = lay.code_tag_bits
        self._skip_owner = lay.owner_skip_from if lay.owner_skip_from is not None else 256
        self._adaptive = lay.code_adaptive or 0
        self._pointer_instr = lay.instr_kind == INSTR_POINTER

        # Caches between walks.
        self._interps: list[int] = []
        self._tstates: list[list[int]] = []
        self._chains: dict[int, list[int]] = {}  # tstate -> frame addresses last time
        self._outside: dict[int, list[int]] = {}  # tstate -> frames outside its data stack
        self._cframe_off = lay.cframe_current_frame
        self._legacy_tids: dict[tuple[int, int], int | None] = {}

    @staticmethod
    def _pair_range(base: int, a: int, b: int) -> tuple[int, int]:
        lo = min(a, b)
        return base + lo, max(a, b) + 8 - lo

    # -- public ------------------------------------------------------------------------

    def walk(self) -> list[ThreadStack]:
        """Every thread of every interpreter, with its stack. See ThreadStack."""
        threads, gil = self._thread_list()
        if not threads:
            return []
        out = self._walk_frames(threads, gil)
        for t in out:
            if t.error is not None:
                self.errors += 1
        return out

    # -- thread list -------------------------------------------------------------------

    def _gil_ranges(self, interps: list[int]) -> list[tuple[int, int]]:
        lay = self.layout
        if self._gil_mode == GIL_INTERP:
            out = []
            for i in interps:
                g = self._interp_gil.get(i)
                if g is None:
                    g = self._read_ptr(i + lay.interp_ceval_gil)  # type: ignore[operator]
                    self._interp_gil[i] = g
                out.append(self._pair_range(g, lay.gil_last_holder, lay.gil_locked))  # type: ignore[arg-type]
            return out
        return [self._gil_range] if self._gil_range is not None else []

    def _thread_list(self) -> tuple[list[tuple[int, int, bytes]], dict[int, int]]:
        """[(interp, tstate, tstate bytes)] and {interp: GIL holder tstate or 0}.

        Tries the speculative one-read version first, then the link-by-link one.
        """
        got = self._thread_list_fast()
        if got is None:
            got = self._thread_list_slow()
        return got

    def _thread_list_fast(self) -> tuple[list[tuple[int, int, bytes]], dict[int, int]] | None:
        interps = self._interps
        if not interps:
            return None
        tstates = self._tstates
        ilen = self._interp_len
        tlen = self._tstate_len
        gil_ranges = self._gil_ranges(interps)
        ranges = [(self._head_addr, 8)]
        ranges += [(i + self._interp_lo, ilen) for i in interps]
        ranges += gil_ranges
        for ts in tstates:
            ranges += [(t, tlen) for t in ts]
        data, k = self.memory.read_ranges_partial(ranges)
        if k != len(ranges):
            return None
        (head,) = struct.unpack_from("<Q", data, 0)
        if head != interps[0]:
            return None
        pos = 8
        heads = []
        for n, _ in enumerate(interps):
            nxt, first = self._unpack_interp(data, pos)
            expected_next = interps[n + 1] if n + 1 < len(interps) else 0
            if nxt != expected_next:
                return None
            expected_first = tstates[n][0] if tstates[n] else 0
            if first != expected_first:
                return None
            heads.append(first)
            pos += ilen
        gil = self._parse_gil(data, pos, gil_ranges, interps)
        pos += sum(r[1] for r in gil_ranges)
        out = []
        nxt_i = self._tidx[0]
        unpack = self._tstate_struct.unpack_from
        for n, ts in enumerate(tstates):
            for j, t in enumerate(ts):
                raw = data[pos : pos + tlen]
                nxt = unpack(raw, 0)[nxt_i]
                if nxt != (ts[j + 1] if j + 1 < len(ts) else 0):
                    return None
                out.append((interps[n], t, raw))
                pos += tlen
        return out, gil

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
        if mode == GIL_CURRENT_SYMBOL:
            if not ranges:
                return {}
            (cur,) = struct.unpack_from("<Q", data, pos)
            return {i: cur for i in interps}
        if mode == GIL_RUNTIME:
            holder_off, locked_off = lay.runtime_gil_last_holder, lay.runtime_gil_locked
        elif mode == GIL_INTERP:
            holder_off, locked_off = lay.gil_last_holder, lay.gil_locked
        else:
            return {}
        base = min(holder_off, locked_off)  # type: ignore[type-var]
        out = {}
        for n, i in enumerate(interps if mode == GIL_INTERP else interps[:1]):
            p = pos + n * ranges[0][1]
            (holder,) = struct.unpack_from("<Q", data, p + holder_off - base)  # type: ignore[operator]
            (locked,) = struct.unpack_from("<i", data, p + locked_off - base)  # type: ignore[operator]
            out[i] = holder if locked == 1 else 0
        if mode == GIL_RUNTIME:
            holder = out.get(interps[0], 0)
            out = {i: holder for i in interps}
        return out

    def _read_ptr(self, addr: int) -> int:
        (v,) = struct.unpack("<Q", self.memory.read(addr, 8))
        return v

    def _thread_list_slow(self) -> tuple[list[tuple[int, int, bytes]], dict[int, int]]:
        mem = self.memory
        interps: list[int] = []
        tstates: list[list[int]] = []
        out = []
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
            return out, {}
        self._interps, self._tstates = interps, tstates
        gil: dict[int, int] = {}
        if interps:
            ranges = self._gil_ranges(interps)
            try:
                data = mem.read_ranges(ranges) if ranges else b""
                gil = self._parse_gil(data, 0, ranges, interps)
            except ReadError:
                gil = {}
        return out, gil

    # -- frames ------------------------------------------------------------------------

    def _walk_frames(
        self, threads: list[tuple[int, int, bytes]], gil: dict[int, int]
    ) -> list[ThreadStack]:
        lay = self.layout
        ti = self._tidx
        unpack = self._tstate_struct.unpack_from
        parsed = []
        for interp, t, raw in threads:
            v = unpack(raw, 0)
            thread_id = v[ti[1]]
            frame = v[ti[2]]
            native = v[ti[3]] if ti[3] >= 0 else None
            chunk = v[ti[4]] if ti[4] >= 0 else 0
            top = v[ti[5]] if ti[5] >= 0 else 0
            if ti[6] >= 0:
                word = v[ti[6]]
                if lay.holds_gil_bit is not None:
                    holds = bool(word >> lay.holds_gil_bit & 1)
                else:
                    holds = word == 1
            else:
                holds = gil.get(interp, 0) == t
            parsed.append([interp, t, thread_id, frame, native, chunk, top, holds])

        if lay.frame_objects:
            stacks = self._walk_object_frames(parsed)
            natives = self._legacy_native_tids(parsed)
        else:
            stacks = self._walk_interpreter_frames(parsed)
            natives = [p[4] for p in parsed]
        out = []
        for p, (frames, truncated, error), native in zip(parsed, stacks, natives):
            out.append(ThreadStack(p[2], native, p[7], frames, truncated, error, p[1], p[0]))
        self._forget_dead_threads({p[1] for p in parsed})
        return out

    def _forget_dead_threads(self, live: set[int]) -> None:
        for cache in (self._chains, self._outside):
            if len(cache) > len(live):
                for t in [t for t in cache if t not in live]:
                    del cache[t]

    # 3.11+ ---------------------------------------------------------------------------

    def _walk_interpreter_frames(
        self, parsed: list[list]
    ) -> list[tuple[list[tuple[int, int]], bool, str | None]]:
        """One vectored read for all threads: the _PyCFrame word (3.11/3.12), the used part
        of the current data-stack chunk, and the frames found outside it last time (C-stack
        shims, generators); then each chain is walked in that buffer."""
        cframe_off = self._cframe_off
        flen = self._flen
        outside = self._outside
        ranges: list[tuple[int, int]] = []
        plan = []
        for p in parsed:
            frame, chunk, top = p[3], p[5], p[6]
            need_cframe = cframe_off is not None and frame and not _bad(frame)
            if need_cframe:
                ranges.append((frame + cframe_off, 8))
            size = top - chunk
            if not (chunk and not _bad(chunk) and 0 < size <= MAX_REGION):
                size = 0
            if size:
                ranges.append((chunk, size))
            extra = outside.get(p[1], ())
            ranges += [(a, flen) for a in extra]
            plan.append((need_cframe, size, extra))
        data, complete = self.memory.read_ranges_partial(ranges) if ranges else (b"", 0)
        out = []
        pos = 0
        n = 0  # ranges consumed
        for p, (need_cframe, size, extra) in zip(parsed, plan):
            frame = p[3]
            if need_cframe:
                if n < complete:
                    (frame,) = struct.unpack_from("<Q", data, pos)
                else:
                    try:
                        frame = self._read_ptr(frame + cframe_off)
                    except ReadError as e:
                        frame = -1
                        err = f"cannot read the current frame: {e}"
                pos += 8
                n += 1
            elif cframe_off is not None:
                frame = 0
            region_pos = -1
            if size:
                if n < complete:
                    region_pos = pos
                pos += size
                n += 1
            known: dict[int, int] = {}
            for a in extra:
                if n < complete:
                    known[a] = pos
                pos += flen
                n += 1
            if frame == -1:
                out.append(([], False, err))
                continue
            out.append(self._walk_iframes(p[1], frame, p[5], data, region_pos, size, known))
        return out

    def _walk_iframes(
        self,
        tstate: int,
        addr: int,
        chunk: int,
        data: bytes,
        region_pos: int,
        size: int,
        known: dict[int, int],
    ) -> tuple[list[tuple[int, int]], bool, str | None]:
        """Follow ``previous`` from ``addr``. Frames inside [chunk, chunk+size) are in
        ``data`` at ``region_pos``; ``known`` maps other prefetched frames to offsets."""
        frames: list[tuple[int, int]] = []
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
        end = _USER_SPACE_END
        if region_pos >= 0:
            lo = chunk
            hi = chunk + size - flen
            shift = chunk - region_pos
        else:
            lo, hi, shift = 1, 0, 0
        extra: list[tuple[int, bytes]] = []  # older chunks loaded during this walk
        next_chunk = -1  # unknown until needed
        outside: list[int] = []
        error = None
        truncated = False
        for _ in range(self.max_depth):
            if not addr:
                break
            if lo <= addr <= hi:
                t = unpack(data, addr - shift)
            else:
                t = None
                pos = known.get(addr)
                if pos is not None:
                    t = unpack(data, pos)
                    outside.append(addr)
                if t is None:
                    if addr & 7 or addr >= end:
                        error = f"bad frame pointer {addr:#x}"
                        break
                    for b, d in extra:
                        if b <= addr <= b + len(d) - flen:
                            t = unpack(d, addr - b)
                            break
                if t is None:
                    if next_chunk == -1:
                        next_chunk = self._chunk_previous(data, region_pos) if size else 0
                    while next_chunk:
                        got = self._load_chunk(next_chunk)
                        if got is None:
                            next_chunk = 0
                            break
                        b, d, next_chunk = got
                        extra.append((b, d))
                        if b <= addr <= b + len(d) - flen:
                            t = unpack(d, addr - b)
                            break
                if t is None:
                    try:
                        t = unpack(self.memory.read(addr, flen), 0)
                    except ReadError:
                        error = f"cannot read frame at {addr:#x}"
                        break
                    outside.append(addr)
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
        if outside:
            self._outside[tstate] = outside[:MAX_OUTSIDE]
        elif tstate in self._outside:
            del self._outside[tstate]
        return frames, truncated, error

    def _chunk_previous(self, data: bytes, pos: int) -> int:
        lay = self.layout
        if pos < 0 or len(data) < pos + lay.chunk_data:  # type: ignore[operator]
            return 0
        (prev,) = struct.unpack_from("<Q", data, pos + lay.chunk_previous)  # type: ignore[operator]
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

    def _prefetch(self, addrs: list[int]) -> dict[int, tuple[bytes, int]]:
        """Read the frame spans at ``addrs`` in one vectored read, merging neighbours.

        Frame objects of similar size come from the same allocator pools, so most of a
        chain sits in a few runs of memory: one iovec per run beats one per frame.
        """
        if not addrs:
            return {}
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
        data, k = self.memory.read_ranges_partial(spans)
        out: dict[int, tuple[bytes, int]] = {}
        pos = 0
        i = 0
        for lo, length in spans[:k]:
            while i < len(starts) and starts[i] < lo + length:
                out[starts[i] - fstart] = (data, pos + starts[i] - lo)
                i += 1
            pos += length
        return out

    def _walk_object_frames(
        self, parsed: list[list]
    ) -> list[tuple[list[tuple[int, int]], bool, str | None]]:
        # Prefetch, for every thread, the rest of last walk's chain from the current top.
        want: list[int] = []
        for p in parsed:
            chain = self._chains.get(p[1])
            top = p[3]
            if chain and top in chain:
                want += chain[chain.index(top) :]
        cache = self._prefetch(want)
        return [self._walk_oframes(p[1], p[3], cache) for p in parsed]

    def _walk_oframes(
        self, tstate: int, addr: int, cache: dict[int, tuple[bytes, int]]
    ) -> tuple[list[tuple[int, int]], bool, str | None]:
        frames: list[tuple[int, int]] = []
        append = frames.append
        chain: list[int] = []
        keep = chain.append
        unpack = self._frame_struct.unpack_from
        fidx = self._fidx
        identity = self._fidx_identity
        flen = self._flen
        fstart = self._fstart
        frame_type = self._frame_type
        scale = self._lasti_scale
        old = self._chains.get(tstate)
        end = _USER_SPACE_END
        error = None
        truncated = False
        for _ in range(self.max_depth):
            if not addr:
                break
            hit = cache.get(addr)
            if hit is None:
                if addr & 7 or not 0x10000 <= addr < end:
                    error = f"bad frame pointer {addr:#x}"
                    break
                if old and addr in old:
                    # Back on a known chain below some new frames: prefetch the rest.
                    cache.update(self._prefetch(old[old.index(addr) :]))
                    old = None
                    hit = cache.get(addr)
            if hit is not None:
                t = unpack(*hit)
            else:
                try:
                    t = unpack(self.memory.read(addr + fstart, flen), 0)
                except ReadError:
                    error = f"cannot read frame at {addr:#x}"
                    break
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
            append((code, lasti * scale if lasti >= 0 else NOT_STARTED))
            addr = back
        else:
            truncated = addr != 0
        self._chains[tstate] = chain
        return frames, truncated, error

    def _legacy_native_tids(self, parsed: list[list]) -> list[int | None]:
        """Kernel tids for versions whose tstate has none: read from glibc's pthread.

        ``thread_id`` is the pthread_t, a pointer to glibc's struct pthread, whose
        ``tid`` field sits at PTHREAD_TID_OFFSET. Each answer is checked against
        /proc/PID/task once and cached for the life of the thread.
        """
        out: list[int | None] = []
        cache = self._legacy_tids
        for p in parsed:
            key = (p[1], p[2])
            if key not in cache:
                tid = None
                if not _bad(p[2]):
                    try:
                        (v,) = struct.unpack("<i", self.memory.read(p[2] + PTHREAD_TID_OFFSET, 4))
                        if v > 0 and os.path.exists(f"/proc/{self.target.pid}/task/{v}"):
                            tid = v
                    except ReadError:
                        tid = None
                cache[key] = tid
            out.append(cache[key])
        if len(cache) > 4 * len(parsed) + 64:
            live = {(p[1], p[2]) for p in parsed}
            for k in [k for k in cache if k not in live]:
                del cache[k]
        return out


def walk_once(pid: int) -> list[ThreadStack]:
    """Attach, walk every thread once, detach: for tools and tests, not for sampling."""
    from flamekit.record.interpreter import open_target

    target = open_target(pid)
    try:
        return StackWalker(target).walk()
    finally:
        target.close()


__all__ = ["MAX_DEPTH", "ProcessGoneError", "StackWalker", "ThreadStack", "walk_once"]

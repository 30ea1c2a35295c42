"""The first read of every walk: the interpreters, their thread states and the GIL words,
with each thread's prefetched frames (as its frame model asks) and the caller's ranges,
in ONE ``process_vm_readv`` while the list stays what the last walk found.

Each thread's frames are read right after its thread state, so the two are copied as
close together in time as the kernel allows. The read is planned once and kept until
the thread list or a thread's prefetch changes. When it fails to link up the same way,
the list is read again link by link (:meth:`ThreadList.read_slow`).

On 3.11+ everything a walk derives before following frames (the thread list, GIL,
thread-state fields, where each thread's frames are) is a function of the *control*
bytes (the thread list's ranges and each current-frame word, not the frames'), so when
they come back the same, so does all of that, and only the frames are walked: a
CPU-bound target's thread states rarely change between samples (:class:`Steady`).
"""

from __future__ import annotations

import struct
from itertools import accumulate
from typing import Any, NamedTuple

from flamekit.record.code_reader import _struct_at
from flamekit.record.layout import GIL_CURRENT_SYMBOL, GIL_INTERP, GIL_RUNTIME
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import (
    MAX_INTERPRETERS,
    MAX_THREADS,
    FrameModel,
    Range,
    ThreadRow,
    bad_pointer,
)

#: Per thread state in a read plan: (interp, tstate, index of its range, the frame
#: model's prefetch spec or None).
Slot = tuple[int, int, int, Any]


class ReadPlan(NamedTuple):
    """What the one-read walk start asks the kernel for, kept while the thread list and
    every thread's prefetch stay the same."""

    ranges: list[Range]  #: head, interpreters, GIL words, then per thread its state and frames
    gil_ranges: list[Range]
    slots: list[Slot]  #: thread states in list order
    at: list[int]  #: where each range lands in the read; the last item: bytes in all
    #: (start, end) in the read of the control bytes (3.11+; None: no steady reuse)
    control: list[tuple[int, int]] | None


class Steady(NamedTuple):
    """A walk that needed no second read: the bytes its parse came from, and the parse."""

    plan: ReadPlan
    control: bytes
    threads: list[ThreadRow]
    jobs: Any  #: the frame model's: where each thread's frames were in the read


class Snapshot:
    """What the first read of a walk returned: the thread list and the prefetched frames."""

    __slots__ = ("threads", "gil", "data", "plan", "read", "control", "steady")

    def __init__(self) -> None:
        self.threads: list[tuple[int, int, bytes]] = []  # (interp, tstate, tstate bytes)
        self.gil: dict[int, int] = {}  # interp -> tstate holding its GIL (0: none)
        self.data = b""
        #: the plan ``data`` was read by (None: frames were not prefetched)
        self.plan: ReadPlan | None = None
        self.read = 0  #: ranges of the plan read whole
        #: 3.11+, all of the plan's ranges read: the control bytes, for a later walk
        self.control: bytes | None = None
        #: the control bytes were last steady walk's: its parse, to walk again
        self.steady: Steady | None = None


class ThreadList:
    """Reads one target's thread list and keeps what it found for the next read."""

    def __init__(self, target: PythonTarget, frames: FrameModel) -> None:
        self.memory = target.memory
        self.frames = frames
        lay = target.layout
        self.steadied = 0  #: walks that reused the last one's parse of the thread list
        self._head_addr = target.interpreters_head_address()

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
            (lay.tstate_native_thread_id, "I"),
            (lay.tstate_datastack_chunk, "Q"),
            (lay.tstate_datastack_top, "Q"),
            (lay.holds_gil_offset, "I"),
            (lay.tstate_unique_id, "Q"),
        ]
        present = [(o, c) for o, c in tfields if o is not None]
        self._tstate_struct, idx = _struct_at(present, 0)
        self._tstate_len = max(o + struct.calcsize("<" + c) for o, c in present)
        # For each of the 8 fields, its index in the unpacked tuple or -1 (absent).
        at = iter(idx)
        fidx = tuple(next(at) if o is not None else -1 for o, _ in tfields)
        self._next_at = fidx[0]
        #: where the parse takes each field from, all but the next pointer
        self._row_at = fidx[1:]
        self._holds_gil_bit = lay.holds_gil_bit

        # GIL words.
        mode = lay.gil_mode
        self._gil_mode = mode
        self._gil_range: Range | None = None
        if mode == GIL_RUNTIME:
            assert target.runtime is not None and lay.runtime_tstate_current is not None
            self._gil_range = (target.runtime + lay.runtime_tstate_current, 8)
        elif mode == GIL_CURRENT_SYMBOL:
            cur = target.symbols.get("_PyThreadState_Current")
            if cur is not None:
                self._gil_range = (cur, 8)
        if mode == GIL_INTERP:
            assert lay.interp_ceval_gil is not None
            assert lay.gil_last_holder is not None and lay.gil_locked is not None
        self._interp_ceval_gil = lay.interp_ceval_gil or 0
        self._gil_holder = lay.gil_last_holder or 0
        self._gil_locked = lay.gil_locked or 0
        self._interp_gil: dict[int, int] = {}  # interp -> its _gil_runtime_state address

        self._interps: tuple[int, ...] = ()
        self._tstates: list[list[int]] = []
        self._plan: ReadPlan | None = None  #: None: plan the next read afresh
        self._steady: Steady | None = None
        #: (plan ranges, extra, both as one tuple) for the read
        self._joined: tuple[list[Range], tuple[Range, ...], tuple[Range, ...]] = ([], (), ())

    @property
    def interpreters(self) -> tuple[int, ...]:
        """The PyInterpreterState addresses the last read found (empty: none, or a torn
        list not yet read whole)."""
        return self._interps

    # -- the one read --------------------------------------------------------------------

    def read_fast(self, extra: tuple[Range, ...]) -> tuple[Snapshot | None, bytes | None]:
        """The one-read walk start, valid when the thread list has not changed (None
        else), and the bytes of ``extra``, read in the same call (None: not read whole)."""
        interps = self._interps
        if not interps:
            return None, None
        if self.frames.replan:
            self.frames.replan = False
            self._plan = None
        plan = self._plan
        if plan is None:
            try:
                gil_ranges = self._gil_ranges(interps)
            except ReadError:
                return None, None
            plan = self._plan = self._make_plan(gil_ranges)
        ranges, gil_ranges, slots, at, control = plan
        joined = self._joined
        if joined[0] is not ranges or joined[1] is not extra:
            joined = self._joined = (ranges, extra, tuple(ranges) + tuple(extra))
        data, k = self.memory.read_ranges_partial(joined[2])
        if not slots or k <= slots[-1][2]:
            return None, None
        extra_data = None
        if extra and k == len(ranges) + len(extra):
            extra_data = data[at[-1] :]
        ctl = None
        if control is not None and k >= len(ranges):
            ctl = b"".join([data[a:b] for a, b in control])
            steady = self._steady
            if steady is not None and steady.plan is plan and steady.control == ctl:
                snap = Snapshot()
                snap.data = data
                snap.plan = plan
                snap.read = k
                snap.steady = steady
                self.steadied += 1
                return snap, extra_data
        return self._check(data, k, plan, ctl), extra_data

    def _check(self, data: bytes, k: int, plan: ReadPlan, ctl: bytes | None) -> Snapshot | None:
        """The read's thread list, if it still links up as the last one did (None else)."""
        interps, tstates = self._interps, self._tstates
        _, gil_ranges, slots, at, _ = plan
        (head,) = struct.unpack_from("<Q", data, 0)
        if head != interps[0]:
            return None
        for n, _ in enumerate(interps):
            nxt, first = self._unpack_interp(data, at[1 + n])
            if nxt != (interps[n + 1] if n + 1 < len(interps) else 0):
                return None
            if first != (tstates[n][0] if tstates[n] else 0):
                return None
        snap = Snapshot()
        snap.data = data
        snap.plan = plan
        snap.read = k
        snap.control = ctl
        snap.gil = self._parse_gil(data, at[1 + len(interps)], gil_ranges, interps)
        nxt_i = self._next_at
        unpack = self._tstate_struct.unpack_from
        tlen = self._tstate_len
        out = snap.threads
        j = 0
        for ts in tstates:
            for m, t in enumerate(ts):
                interp, _, r, _ = slots[j]
                j += 1
                p = at[r]
                if unpack(data, p)[nxt_i] != (ts[m + 1] if m + 1 < len(ts) else 0):
                    return None
                out.append((interp, t, data[p : p + tlen]))
        return snap

    def _make_plan(self, gil_ranges: list[Range]) -> ReadPlan:
        frames = self.frames
        ilen, tlen = self._interp_len, self._tstate_len
        ranges = [(self._head_addr, 8)]
        ranges += [(i + self._interp_lo, ilen) for i in self._interps]
        ranges += gil_ranges
        slots: list[Slot] = []
        for interp, ts in zip(self._interps, self._tstates):
            for t in ts:
                r = len(ranges)
                ranges.append((t, tlen))
                slots.append((interp, t, r, frames.prefetch(t, ranges)))
        at = list(accumulate((length for _, length in ranges), initial=0))
        slots = [
            (interp, t, r, None if spec is None else frames.locate(spec, at))
            for interp, t, r, spec in slots
        ]
        return ReadPlan(ranges, gil_ranges, slots, at, self._control_spans(slots, ranges, at))

    def _control_spans(
        self, slots: list[Slot], ranges: list[Range], at: list[int]
    ) -> list[tuple[int, int]] | None:
        """Where in the read's bytes the control ranges are (3.11+): all ranges up to the
        first thread state, then each thread state and its frame model's control ranges
        (the current-frame word), as (start, end) pairs with neighbours merged."""
        if not self.frames.steady or not slots:
            return None
        idx = list(range(slots[0][2]))
        for _, _, r, spec in slots:
            idx.append(r)
            if spec is not None:
                idx += self.frames.control(spec)
        spans: list[tuple[int, int]] = []
        for i in idx:
            a, b = at[i], at[i] + ranges[i][1]
            if spans and spans[-1][1] == a:
                spans[-1] = (spans[-1][0], b)
            else:
                spans.append((a, b))
        return spans

    def keep_steady(self, snap: Snapshot, threads: list[ThreadRow], jobs: Any) -> None:
        """``snap``'s walk needed no second read: a later read whose control bytes are
        the same may skip to ``jobs``, with ``threads`` as its thread list."""
        if snap.control is not None and snap.plan is not None:
            self._steady = Steady(snap.plan, snap.control, threads, jobs)

    # -- the thread list link by link ----------------------------------------------------

    def read_slow(self) -> Snapshot:
        """The thread list link by link (first walk, or after threads came or went)."""
        mem = self.memory
        snap = Snapshot()
        interps: list[int] = []
        tstates: list[list[int]] = []
        out = snap.threads
        nxt_i = self._next_at
        self._plan = None
        try:
            interp = self._read_ptr(self._head_addr)
            while interp and len(interps) < MAX_INTERPRETERS:
                if bad_pointer(interp) or interp in interps:
                    break
                raw = mem.read(interp + self._interp_lo, self._interp_len)
                nxt, t = self._unpack_interp(raw, 0)
                interps.append(interp)
                ts: list[int] = []
                tstates.append(ts)
                seen = set()
                while t and len(ts) < MAX_THREADS and not bad_pointer(t) and t not in seen:
                    seen.add(t)
                    traw = mem.read(t, self._tstate_len)
                    ts.append(t)
                    out.append((interp, t, traw))
                    t = self._tstate_struct.unpack_from(traw, 0)[nxt_i]
                interp = nxt
        except ReadError:
            # Torn list (a thread exiting as we read): use what we have, retry next time.
            self.forget()
            return snap
        self._interps, self._tstates = tuple(interps), tstates
        self._interp_gil = {i: g for i, g in self._interp_gil.items() if i in interps}
        if interps:
            try:
                ranges = self._gil_ranges(self._interps)
                data = mem.read_ranges(ranges) if ranges else b""
                snap.gil = self._parse_gil(data, 0, ranges, self._interps)
            except ReadError:
                pass
        return snap

    def forget(self) -> None:
        """Read the list link by link next time (it was torn)."""
        self._interps, self._tstates = (), []
        self._plan = None

    def read_one(self, interp: int, tstate: int) -> Snapshot | None:
        """One thread state, read afresh, with no prefetch (None: it cannot be read)."""
        try:
            raw = self.memory.read(tstate, self._tstate_len)
        except ReadError:
            return None
        snap = Snapshot()
        snap.threads = [(interp, tstate, raw)]
        return snap

    # -- parsing -------------------------------------------------------------------------

    def parse(self, snap: Snapshot) -> list[ThreadRow]:
        """The fields of each thread state ``snap`` read (see ThreadRow)."""
        i_id, i_frame, i_native, i_chunk, i_top, i_gil, i_uid = self._row_at
        unpack = self._tstate_struct.unpack_from
        gil = snap.gil
        bit = self._holds_gil_bit
        out: list[ThreadRow] = []
        for interp, t, raw in snap.threads:
            v = unpack(raw, 0)
            if i_gil >= 0:
                word = v[i_gil]
                holds = bool(word >> bit & 1) if bit is not None else word == 1
            else:
                holds = gil.get(interp, 0) == t
            out.append(
                (
                    interp,
                    t,
                    v[i_id],
                    v[i_frame],  # 3.11/3.12: the _PyCFrame
                    v[i_native] if i_native >= 0 else None,
                    v[i_chunk] if i_chunk >= 0 else 0,
                    v[i_top] if i_top >= 0 else 0,
                    holds,
                    v[i_uid] if i_uid >= 0 else 0,
                )
            )
        return out

    def _unpack_interp(self, data: bytes, pos: int) -> tuple[int, int]:
        (nxt,) = struct.unpack_from("<Q", data, pos + self._interp_next)
        (first,) = struct.unpack_from("<Q", data, pos + self._interp_head)
        return nxt, first

    def _gil_ranges(self, interps: tuple[int, ...]) -> list[Range]:
        if self._gil_mode == GIL_INTERP:
            out = []
            holder, locked = self._gil_holder, self._gil_locked
            for i in interps:
                g = self._interp_gil.get(i)
                if g is None:
                    g = self._read_ptr(i + self._interp_ceval_gil)
                    if bad_pointer(g):
                        raise ReadError(f"bad GIL pointer {g:#x}", g)
                    self._interp_gil[i] = g
                lo = min(holder, locked)
                out.append((g + lo, max(holder, locked) + 8 - lo))
            return out
        return [self._gil_range] if self._gil_range is not None else []

    def _parse_gil(
        self, data: bytes, pos: int, ranges: list[Range], interps: tuple[int, ...]
    ) -> dict[int, int]:
        """{interp: tstate holding its GIL, 0 if none} from the GIL words read at ``pos``."""
        mode = self._gil_mode
        if mode in (GIL_CURRENT_SYMBOL, GIL_RUNTIME):  # one word: the running thread state
            if not ranges:
                return {}
            (cur,) = struct.unpack_from("<Q", data, pos)
            return {i: cur for i in interps}
        if mode != GIL_INTERP:
            return {}
        holder_off, locked_off = self._gil_holder, self._gil_locked
        base = min(holder_off, locked_off)
        out = {}
        for n, i in enumerate(interps):
            p = pos + n * ranges[0][1]
            (holder,) = struct.unpack_from("<Q", data, p + holder_off - base)
            (locked,) = struct.unpack_from("<i", data, p + locked_off - base)
            out[i] = holder if locked == 1 else 0
        return out

    def _read_ptr(self, addr: int) -> int:
        (v,) = struct.unpack("<Q", self.memory.read(addr, 8))
        return v

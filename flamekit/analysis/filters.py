"""The one filter layer between the symbolized model and every output (and ``diff``).

Which samples count (idle or not, GIL-holding only, a time window, some threads) and
whether stacks are rooted per thread are decided here, once, so that collapsed, speedscope,
cpuprofile, svg, pprof, ``top`` and ``diff`` can never disagree about what was selected.

:func:`select` turns a :class:`~flamekit.analysis.profile.Profile` and :class:`FilterOptions` into
a :class:`Selection`: the indices of the chosen samples (time order) plus helpers that
give converters what they want without touching the filters again: per-sample
(time, thread, stack) tuples, or aggregated counts per rooted frame-id stack (the
weights). The command-line options that build :class:`FilterOptions` are
:func:`flamekit.commands._common.filter_options`'s: this layer knows no command line.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import and_
from typing import Optional

from flamekit.analysis.escape import printable
from flamekit.analysis.profile import Profile
from flamekit.errors import UsageError
from flamekit.trace import Trace
from flamekit.trace.records import MAX_TIME_NS
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE

NS = 1_000_000_000

#: A stack with its root kept apart: (the root frame's id or None, the frame ids of the
#: stack, root first). The root is the thread's (``threads``), its process's (a process
#: tree), or one naming both (see :meth:`Selection.root_frame`).
Rooted = tuple[Optional[int], tuple[int, ...]]


@dataclass(frozen=True)
class FilterOptions:
    """What to select, as the shared command-line options spell it.

    ``threads``: root each stack at a ``thread NAME (TID)`` frame (separate stacks per
    thread). ``idle``: keep idle samples (dropped by default: a thread waiting is not
    where time goes). ``gil``: keep only samples whose thread held the GIL.
    ``start_s``/``until_s``: the half-open window [start, until) in seconds from the
    start of the recording. ``thread_ids``: keep only these native thread ids (empty:
    all threads). ``pids``: keep only these processes' samples (empty: all of them).
    ``merge_processes``: fold the processes of a process tree into one tree of stacks;
    otherwise a selection spanning several process runs roots each run's stacks at a
    ``process PID: COMMAND LINE`` frame.
    """

    threads: bool = False
    idle: bool = False
    gil: bool = False
    start_s: float | None = None
    until_s: float | None = None
    thread_ids: tuple[int, ...] = ()
    pids: tuple[int, ...] = ()
    merge_processes: bool = False

    def __post_init__(self) -> None:
        for name, v in (("--from", self.start_s), ("--until", self.until_s)):
            if v is not None and (not math.isfinite(v) or v < 0):
                raise UsageError(f"{name} must be a number of seconds >= 0, got {v}")
        if self.start_s is not None and self.until_s is not None and self.until_s <= self.start_s:
            raise UsageError(
                f"--until ({self.until_s:g} s) must be later than --from ({self.start_s:g} s)"
            )

    def wants(self, flags: int, time_ns: int, native_tid: int | None) -> bool:
        """Whether one sample passes: the plain predicate, kept for reference and tests."""
        if not self.idle and flags & FLAG_IDLE:
            return False
        if self.gil and not flags & FLAG_GIL:
            return False
        if self.start_s is not None and time_ns < seconds_ns(self.start_s):
            return False
        if self.until_s is not None and time_ns >= seconds_ns(self.until_s):
            return False
        return not self.thread_ids or native_tid in self.thread_ids


def seconds_ns(seconds: float) -> int:
    """``--from``/``--until`` seconds as ns since the origin. Past every time a trace can
    hold it is MAX_TIME_NS: ``--until 1e300`` means "to the end", and 1e300 s in ns
    overflowed a float into a traceback."""
    return round(seconds * NS) if seconds < MAX_TIME_NS / NS else MAX_TIME_NS


class Selection:
    """The samples a filter chose, and the views of them converters need.

    ``indices`` are sample indices into ``profile.trace`` in time order (a ``range``
    when nothing but the window filtered, an array otherwise). Weights are sample
    counts: every selected sample weighs 1; :attr:`period_ns` gives the nominal time
    one sample stands for, for formats that want time units.
    """

    def __init__(
        self,
        profile: Profile,
        options: FilterOptions,
        indices: Sequence[int],
        per_process: bool = False,
    ) -> None:
        self.profile = profile
        self.options = options
        self.indices = indices
        #: stacks are rooted at their process run (see FilterOptions.merge_processes)
        self.per_process = per_process
        self._raw: Counter[tuple[int, int]] | None = None
        self._rooted: dict[bool, dict[Rooted, int]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def period_ns(self) -> int | None:
        """The nominal sampling period from the header's rate, or None if unknown."""
        rate = self.profile.trace.header.rate_hz
        return round(NS / rate) if rate > 0 else None

    def _column(self, col: Sequence[int]) -> Iterator[int] | Sequence[int]:
        idx = self.indices
        if isinstance(idx, range):
            if idx.start == 0 and idx.stop == len(col):
                return col
            return col[idx.start : idx.stop]
        return map(col.__getitem__, idx)

    def samples(self) -> Iterator[tuple[int, int, int]]:
        """(time ns since the recording's origin, thread ref, stack id) per selected sample."""
        tr = self.profile.trace
        return zip(
            self._column(tr.times), self._column(tr.columns.thread), self._column(tr.columns.stack)
        )

    def root_frame(self, thread_ref: int) -> int | None:
        """The frame every stack of this thread is rooted at, if any: its process run's
        (:attr:`per_process`), its thread's (``threads``), or with both one frame naming
        the two, ``process PID: COMMAND LINE / thread NAME (TID)``: one root level, so
        that every output keeps the one-root shape its size bounds are worked out for."""
        prof = self.profile
        if self.per_process:
            return prof.process_frame(thread_ref, with_thread=self.options.threads)
        return prof.thread_frame(thread_ref) if self.options.threads else None

    def root(self, thread_ref: int) -> tuple[int, ...]:
        """:meth:`root_frame` as a tuple (empty: no root)."""
        fid = self.root_frame(thread_ref)
        return () if fid is None else (fid,)

    def thread_title(self, thread_ref: int) -> str:
        """A thread's name for outputs that list threads: ``thread NAME (TID)``, after its
        process's ``process PID: COMMAND LINE`` when stacks are rooted per process."""
        prof = self.profile
        label = prof.thread_label(thread_ref)
        if self.per_process:
            return f"{prof.process_label(thread_ref)} / {label}"
        return label

    @property
    def keyed_by_thread(self) -> bool:
        """Whether stacks depend on their thread (a thread or process root)."""
        return self.options.threads or self.per_process

    def raw_counts(self) -> Counter[tuple[int, int]]:
        """Selected samples per (thread ref, stack id); thread ref is -1 unless stacks are
        rooted per thread or per process (:attr:`keyed_by_thread`).

        Counted once per selection (an output's size estimate and the output share it);
        do not modify it."""
        if self._raw is None:
            cols = self.profile.trace.columns
            if self.keyed_by_thread:
                self._raw = Counter(zip(self._column(cols.thread), self._column(cols.stack)))
            else:
                self._raw = Counter((-1, s) for s in self._column(cols.stack))
        return self._raw

    def rooted_counts(self, lines: bool = True) -> dict[Rooted, int]:
        """Selected samples per (root frame id, frame-id stack root first): the stacks of
        :meth:`stack_counts` with their root kept apart (None: no root).

        The stack is the profile's own tuple, shared by every thread that ran it: copying
        it under each thread's root made 1,000 threads of one 65,536-frame stack 524 MB
        of tuples, from a 150 KB trace. Stacks that symbolize alike are merged.
        """
        out = self._rooted.get(lines)
        if out is None:
            prof = self.profile
            out = self._rooted[lines] = {}
            for (thread, sid), n in self.raw_counts().items():
                root = self.root_frame(thread) if thread >= 0 else None
                key = (root, prof.stack(sid, lines))
                out[key] = out.get(key, 0) + n
        return out

    def stack_counts(self, lines: bool = True) -> dict[tuple[int, ...], int]:
        """Selected samples per distinct frame-id stack, root first.

        Each stack starts with its root frame, if any (:meth:`root_frame`). Stacks that
        symbolize alike (two offsets on one line; any lines of a function when not
        ``lines``) are merged. The counts add up to ``len(self)``. Each rooted stack is a
        new tuple: outputs work from :meth:`rooted_counts`.
        """
        return {
            stack if root is None else (root, *stack): n
            for (root, stack), n in self.rooted_counts(lines).items()
        }

    def stack_of(self, thread_ref: int, stack_id: int, lines: bool = True) -> tuple[int, ...]:
        """The rooted frame-id stack of one sample (for per-sample formats)."""
        return self.root(thread_ref) + self.profile.stack(stack_id, lines)


def select(profile: Profile, options: FilterOptions) -> Selection:
    """The samples of ``profile`` that ``options`` keep.

    Raises UsageError when ``--thread`` or ``--pid`` names no thread or process of the
    trace (a typo should not silently give an empty profile). An empty selection is a
    result, returned as such (:func:`explain_empty` says why it is empty).
    """
    tr = profile.trace
    cols = tr.columns
    n = len(cols)
    lo, hi = 0, n
    # Times never decrease (the writer clamps dt at 0), so the window is a slice.
    if options.start_s is not None:
        lo = bisect_left(tr.times, seconds_ns(options.start_s))
    if options.until_s is not None:
        hi = max(lo, bisect_left(tr.times, seconds_ns(options.until_s)))
    masks = []
    if not options.idle or options.gil:
        ok = bytes(
            int((options.idle or not f & FLAG_IDLE) and (not options.gil or bool(f & FLAG_GIL)))
            for f in range(256)
        )
        masks.append(map(ok.__getitem__, cols.flags[lo:hi]))
    if options.thread_ids:
        wanted = set(options.thread_ids)
        refs = {r for r, t in tr.threads.items() if t.native_tid in wanted}
        if not refs:
            known = ", ".join(
                f"{t.native_tid} ({t.name})"
                for t in tr.threads.values()
                if t.native_tid is not None
            )
            raise UsageError(
                f"--thread: no thread with TID {', '.join(map(str, options.thread_ids))} "
                f"in {tr.path} (threads: {known or 'none with a TID'})"
            )
        masks.append(map(refs.__contains__, cols.thread[lo:hi]))
    in_runs = _runs_of(tr, options.pids)
    if options.pids:
        refs = {r for r, run in tr.thread_runs.items() if run in in_runs}
        masks.append(map(refs.__contains__, cols.thread[lo:hi]))
    per_process = not options.merge_processes and len(in_runs) > 1
    if not masks:
        return Selection(profile, options, range(lo, hi), per_process)
    keep = masks[0] if len(masks) == 1 else map(and_, *masks)
    return Selection(profile, options, array("q", compress(range(lo, hi), keep)), per_process)


def _runs_of(tr: Trace, pids: tuple[int, ...]) -> set[int]:
    """The process runs (indices) with threads whose pid is one of ``pids`` (any pid, if
    none given). A pid no run has is a usage error that lists the processes there are."""
    runs = set(tr.thread_runs.values())
    if not pids:
        return runs
    wanted = set(pids)
    chosen = {r for r in runs if tr.runs[r].pid in wanted}
    if not chosen:
        have = ", ".join(
            printable(f"{tr.runs[r].pid} ({' '.join(tr.runs[r].process.cmdline) or '?'})")
            for r in sorted(runs)
        )
        raise UsageError(
            f"--pid: no process {', '.join(map(str, pids))} in {tr.path} "
            f"(processes: {have or 'none'})"
        )
    return chosen


def explain_empty(profile: Profile, options: FilterOptions) -> str:
    """Why a selection came out empty, in one line that says "no samples", for a
    command's warning (the command names the file)."""
    tr = profile.trace
    n = len(tr)
    if not n:
        return "the trace holds no samples"
    flags = tr.columns.flags
    idle = sum(1 for f in flags if f & FLAG_IDLE)
    gil = sum(1 for f in flags if f & FLAG_GIL)
    why = []
    if not options.idle and idle:
        why.append(f"{idle:,} idle (kept only with --idle)")
    if options.gil:
        why.append(f"{gil:,} holding the GIL")
    if options.start_s is not None or options.until_s is not None:
        last = tr.times[-1] / NS
        why.append(f"samples span 0-{last:.3f} s")
    detail = f": {'; '.join(why)}" if why else ""
    return f"no samples match the filters ({n:,} in the trace{detail})"

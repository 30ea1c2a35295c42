"""A recording's picture while it is made: what ``flamekit top -p`` shows every interval.

:class:`LiveProfile` watches the recording as the trace gets it (a
:class:`~flamekit.trace.writer.TraceObserver`): records go into a
:class:`~flamekit.trace.model.TraceBuilder`, the same one ``load`` reads a file with, so
stacks, code and threads mean here what they mean in the trace ``-o`` keeps. Samples are
not kept one by one: each is counted by (thread ref, flags, stack id) for the interval
under way, and an interval's counts are added into the whole run's when it closes. A
board is ranked from those counts with :mod:`flamekit.analysis.ranking`'s ``tally`` and
``order``, so self and total mean what they mean in ``top FILE`` and ``diff``: its cost
follows the distinct stacks, never the samples, however long the session runs.

Percentages are of the last interval (what the process does now, as ``py-spy top``
shows it); the counts are given for the last interval and for the whole run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from flamekit.analysis.profile import (
    LineResolver,
    Profile,
    add_stacks,
    default_line_resolver,
)
from flamekit.analysis.ranking import order, tally
from flamekit.errors import UsageError
from flamekit.trace import records as R
from flamekit.trace.model import TraceBuilder
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE

#: What a live board can be sorted by: own (self) samples, total samples, or the label.
LiveBy = Literal["self", "total", "name"]
LIVE_BY: tuple[LiveBy, ...] = ("self", "total", "name")


def check_live_by(by: str) -> LiveBy:
    """``by`` itself if it names a live order; a UsageError naming the choices otherwise."""
    for choice in LIVE_BY:
        if by == choice:
            return choice
    raise UsageError(f"sort by 'self', 'total' or 'name', not {by!r}")


#: What a key of the live screen switches on and off (see View).
Toggle = Literal["idle", "gil", "threads", "lines"]

#: One sample's identity as counted: (thread ref, flags, stack id).
Key = tuple[int, int, int]


@dataclass(frozen=True)
class View:
    """How the board is ranked and what it counts: the keys of the live screen.

    ``idle``: count idle samples too (dropped by default, as in ``top FILE``). ``gil``:
    only samples whose thread held the GIL. ``threads``: one row per (thread, function)
    rather than per function. ``lines``: lines (``function (file:line)``), not functions.
    """

    by: LiveBy = "self"
    idle: bool = False
    gil: bool = False
    threads: bool = False
    lines: bool = False

    @property
    def counting(self) -> tuple[bool, bool, bool, bool]:
        """What the counts depend on (the order does not change them)."""
        return (self.idle, self.gil, self.threads, self.lines)

    def toggled(self, name: Toggle) -> View:
        return replace(self, **{name: not getattr(self, name)})

    def sorted_by(self, by: LiveBy) -> View:
        return replace(self, by=by)

    def wants(self, flags: int) -> bool:
        return (self.idle or not flags & FLAG_IDLE) and (not self.gil or bool(flags & FLAG_GIL))


@dataclass(frozen=True)
class Row:
    """One ranked function (or line), of one thread in the per-thread view. Labels are
    the target's own text, unescaped: the screen escapes them."""

    label: str
    thread: str | None  #: ``thread NAME (TID)`` in the per-thread view
    self_now: int  #: own samples in the last interval
    total_now: int  #: samples on the stack in the last interval
    self_all: int  #: own samples over the whole run
    total_all: int


@dataclass(frozen=True)
class Figures:
    """The header's facts: the process, and how sampling went over the last interval.
    Text fields are the target's own, unescaped."""

    pid: int
    cmdline: tuple[str, ...]
    python: str
    asked_hz: float
    elapsed_s: float
    interval_s: float
    rate_hz: float  #: ticks that sampled a stack, a second, over the last interval
    threads_now: int  #: threads sampled in the last interval
    threads_all: int  #: threads seen over the whole run
    processes: int  #: Python processes being recorded
    errors_now: int
    errors_all: int
    #: share of the last interval's (process, tick) samplings whose process had a thread
    #: holding the GIL; None before any tick
    gil_share: float | None
    samples_now: int
    samples_all: int


@dataclass(frozen=True)
class Board:
    """One refresh's content: the header's figures and the rows, ranked by ``view``."""

    figures: Figures
    view: View
    rows: list[Row]
    selected_now: int  #: samples the view counts in the last interval (the % base)
    selected_all: int


@dataclass
class _Interval:
    counts: Counter[Key]
    ticks: int
    gil_ticks: int
    start_s: float
    end_s: float
    sampled_ticks: int  #: the recorder's count of ticks that sampled, over the interval
    errors: int


class LiveProfile:
    """The picture of a recording under way; give it to the recording session as its
    observer, feed it the progress figures, and :meth:`roll` it once an interval."""

    def __init__(
        self, resolve_line: LineResolver | None = None, full_filenames: bool = False
    ) -> None:
        self._builder = TraceBuilder("<live recording>")
        self._resolve = resolve_line or default_line_resolver()
        self._full_filenames = full_filenames
        self.profile: Profile | None = None
        self._pending: list[int] = []  #: stack ids not yet symbolized
        self._now: Counter[Key] = Counter()
        self.whole: Counter[Key] = Counter()
        self.generation = 0  #: intervals closed so far
        self._last_t = -1
        self._last_gil_t = -1
        self._ticks = 0
        self._gil_ticks = 0
        #: the recorder's latest (elapsed s, samples, sampled ticks, errors)
        self.progress_figures: tuple[float, int, int, int] = (0.0, 0, 0, 0)
        self._opened: tuple[float, int, int] = (0.0, 0, 0)  # (elapsed, ticks, errors)
        self.last: _Interval | None = None
        self._whole_tally: tuple[tuple[bool, ...], int, dict[Hashable, list[int]]] | None = None

    # -- the observer side (called from the sampling loop: cheap) -----------------------

    def record(self, rec: R.Record) -> None:
        self._builder.add(rec)
        if isinstance(rec, R.Stack):
            self._pending.append(rec.id)
        elif isinstance(rec, R.Header):
            assert self._builder.trace is not None
            self.profile = Profile(self._builder.trace)
            self.profile.stacks[R.EMPTY_STACK] = (self.profile.empty_frame,)

    def sample(self, t_ns: int, thread_ref: int, stack_id: int, gil: bool, idle: bool) -> None:
        # One tick of one process writes its samples together, with one time.
        if t_ns != self._last_t:
            self._last_t = t_ns
            self._ticks += 1
        if gil and t_ns != self._last_gil_t:
            self._last_gil_t = t_ns
            self._gil_ticks += 1
        flags = (FLAG_GIL if gil else 0) | (FLAG_IDLE if idle else 0)
        self._now[(thread_ref, flags, stack_id)] += 1

    def progress(self, elapsed_s: float, samples: int, ticks: int, errors: int) -> None:
        """The recorder's running figures (its progress callback's arguments)."""
        self.progress_figures = (elapsed_s, samples, ticks, errors)

    # -- the intervals ---------------------------------------------------------------

    def roll(self) -> None:
        """Close the interval under way (its samples join the whole run's) and open the
        next one; :meth:`board` shows the one just closed."""
        elapsed, _, sampled, errors = self.progress_figures
        start, sampled0, errors0 = self._opened
        self.last = _Interval(
            self._now,
            self._ticks,
            self._gil_ticks,
            start,
            elapsed,
            sampled - sampled0,
            errors - errors0,
        )
        self.whole.update(self._now)
        self._now = Counter()
        self._ticks = self._gil_ticks = 0
        self._opened = (elapsed, sampled, errors)
        self.generation += 1

    def board(self, view: View) -> Board | None:
        """The last closed interval and the whole run, ranked by ``view``; None before
        the recording's header or the first :meth:`roll`."""
        prof, last = self.profile, self.last
        if prof is None or last is None:
            return None
        if self._pending:
            add_stacks(prof, self._pending, self._resolve, self._full_filenames)
            self._pending = []
        now = tally(self._stacks(last.counts, view))
        whole = self._whole(view, now)
        rows = [self._row(prof, key, now.get(key), counts, view) for key, counts in whole.items()]
        if view.by == "name":
            rows.sort(key=lambda r: (r.label, r.thread or ""))
        else:
            order(
                rows,
                view.by,
                lambda r: r.self_now,
                lambda r: r.total_now,
                lambda r: (-r.self_all, -r.total_all, r.label, r.thread or ""),
            )
        selected_now = sum(n for k, n in last.counts.items() if view.wants(k[1]))
        selected_all = sum(n for k, n in self.whole.items() if view.wants(k[1]))
        return Board(self._figures(prof, last), view, rows, selected_now, selected_all)

    # -- ranking ----------------------------------------------------------------------

    def _stacks(self, counts: Counter[Key], view: View) -> Iterable[tuple[tuple, int]]:
        """The counted samples ``view`` keeps as weighted frame-id stacks (root first);
        per thread, each frame is keyed (thread ref, frame id)."""
        prof = self.profile
        assert prof is not None
        merged: dict[tuple, int] = {}
        lines = view.lines
        for (thread, flags, sid), n in counts.items():
            if not view.wants(flags):
                continue
            stack = prof.stack(sid, lines)
            key = tuple((thread, f) for f in stack) if view.threads else stack
            merged[key] = merged.get(key, 0) + n
        return merged.items()

    def _whole(self, view: View, now: dict[Hashable, list[int]]) -> dict[Hashable, list[int]]:
        """The whole run's tally for ``view``: the last one plus this interval's when it
        is the next of the same view, counted afresh otherwise (another view, a pause)."""
        cached = self._whole_tally
        if cached is not None and cached[0] == view.counting and cached[1] == self.generation - 1:
            acc = cached[2]
            for key, (s, t) in now.items():
                c = acc.get(key)
                if c is None:
                    acc[key] = [s, t]
                else:
                    c[0] += s
                    c[1] += t
        elif cached is not None and cached[0] == view.counting and cached[1] == self.generation:
            acc = cached[2]  # the same interval shown again (a key pressed)
        else:
            acc = tally(self._stacks(self.whole, view))
        self._whole_tally = (view.counting, self.generation, acc)
        return acc

    @staticmethod
    def _row(
        prof: Profile, key: Hashable, now: list[int] | None, whole: list[int], view: View
    ) -> Row:
        if view.threads:
            assert isinstance(key, tuple)
            thread, frame = key
            label, title = prof.label(frame), prof.thread_label(thread)
        else:
            assert isinstance(key, int)
            label, title = prof.label(key), None
        s, t = now if now is not None else (0, 0)
        return Row(label, title, s, t, whole[0], whole[1])

    def _figures(self, prof: Profile, last: _Interval) -> Figures:
        tr = prof.trace
        head = tr.header
        span = last.end_s - last.start_s
        return Figures(
            pid=head.pid,
            cmdline=tuple(head.cmdline),
            python=head.python_version or "?",
            asked_hz=head.rate_hz,
            elapsed_s=last.end_s,
            interval_s=span,
            rate_hz=last.sampled_ticks / span if span > 0 else 0.0,
            threads_now=len({k[0] for k in last.counts}),
            threads_all=len(tr.threads),
            processes=sum(1 for r in tr.runs if r.end is None and r.process.python_version),
            errors_now=last.errors,
            errors_all=self.progress_figures[3],
            gil_share=last.gil_ticks / last.ticks if last.ticks else None,
            samples_now=sum(last.counts.values()),
            samples_all=sum(self.whole.values()),
        )

"""flamekit's Python API for traces: open a recording, look into it, profile it, write it.

::

    import flamekit

    rec = flamekit.open("run.fkt")
    rec.summary["duration_s"], [t.name for t in rec.threads]
    for row in rec.profile(idle=False).rank("self")[:5]:
        print(f"{row.self_pct:5.1f}%  {row.label}")
    rec.profile(threads=[4242], per_thread=True).write("svg", "main.svg")  # a TID

The offline commands are faces of this module: ``info`` prints :attr:`Recording.summary`,
``top`` prints :meth:`Profile.rank`, ``convert`` is :meth:`Profile.write`, and ``diff``
compares two :class:`Profile` selections. So what a notebook computes is what the
command line shows, for the same trace and filters.

Everything here works from the trace alone: nothing imports click or the recorder.
Errors are :class:`~flamekit.errors.FlamekitError` subclasses: ``TraceError`` for a file
that is not a readable trace, ``UsageError`` for bad arguments (an unknown format or
thread, a window ending before it starts), ``OutputError`` for a path that cannot be
written. An empty profile is no error but a result (a ``--gil`` recording of a program
that only sleeps has no samples): it ranks to no rows and writes a valid empty file of
every format, and :attr:`Profile.why_empty` says why it is empty.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, overload

from flamekit.analysis.budget import DEFAULT_MAX_OUTPUT, check
from flamekit.analysis.filters import FilterOptions, Selection, explain_empty, select
from flamekit.analysis.profile import Frame, build_profile
from flamekit.analysis.profile import Profile as SymbolizedProfile
from flamekit.analysis.ranking import rank
from flamekit.analysis.summary import Summary, summarize, threads_in_order
from flamekit.output import refuse_inputs, write_output
from flamekit.trace import Header, Process, Thread, Trace, load
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE

__all__ = [
    "FilterOptions",
    "Frame",
    "Profile",
    "Ranked",
    "Recording",
    "SampleRow",
    "SampleRows",
    "formats",
    "open",
]


def open(
    path: str | os.PathLike[str],
    *,
    full_filenames: bool = False,
    debug_dirs: Sequence[str] = (),
    native_lines: bool = False,
) -> Recording:
    """Read a whole FKT trace. A truncated trace opens with what it holds
    (:attr:`Recording.truncated` says so); anything unreadable raises TraceError.

    Frames show files relative to the import root they were loaded from (site-packages,
    the standard library, the script's directory: ``pylint/__init__.py``); with
    ``full_filenames``, as recorded (the trace keeps them whole either way).

    A ``record --native`` trace has its native stacks symbolized (the objects found by
    build id, then path; ``debug_dirs`` are looked in first) and merged with its Python
    stacks: each sample's stack is one of C and Python; with ``native_lines``, native
    frames get their source file and line where the objects' DWARF has them."""
    trace = load(path)
    if trace.native:
        from flamekit.analysis.native import with_native_stacks
        from flamekit.symbolize.native import NativeSymbolizer, ObjectFinder

        finder = ObjectFinder(debug_dirs)
        symbolizer = NativeSymbolizer(trace.native_objects, finder, lines=native_lines)
        trace = with_native_stacks(trace, symbolizer)
    return Recording(trace, full_filenames=full_filenames)


def formats() -> list[str]:
    """The output formats :meth:`Profile.write` knows, as ``convert --to`` lists them."""
    from flamekit.convert.base import formats as registered

    return list(registered())


# -- samples as rows ---------------------------------------------------------------------


class SampleRow(NamedTuple):
    """One sample. ``time_ns``: since the start of the recording; ``thread``: the thread's
    ref in the trace (:meth:`Recording.thread`); ``flags``: idle (1) and GIL (2) bits;
    ``stack``: the stack id (:meth:`Recording.stack`; 0 is a stack without Python frames)."""

    time_ns: int
    thread: int
    flags: int
    stack: int

    @property
    def idle(self) -> bool:
        return bool(self.flags & FLAG_IDLE)

    @property
    def gil(self) -> bool:
        return bool(self.flags & FLAG_GIL)


class SampleRows(Sequence[SampleRow]):
    """Every sample of a trace in time order, as rows made on demand from its columns.

    Nothing is copied: a million samples stay four typed arrays (:meth:`columns`, which
    ``pandas.DataFrame`` takes as they are) and a row is built only when asked for.
    """

    def __init__(self, trace: Trace) -> None:
        self._trace = trace

    def __len__(self) -> int:
        return len(self._trace)

    @overload
    def __getitem__(self, i: int) -> SampleRow: ...

    @overload
    def __getitem__(self, i: slice) -> list[SampleRow]: ...

    def __getitem__(self, i: int | slice) -> SampleRow | list[SampleRow]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        tr = self._trace
        cols = tr.columns
        return SampleRow(tr.times[i], cols.thread[i], cols.flags[i], cols.stack[i])

    def __iter__(self) -> Iterator[SampleRow]:
        tr = self._trace
        cols = tr.columns
        return map(SampleRow._make, zip(tr.times, cols.thread, cols.flags, cols.stack))

    def columns(self) -> dict[str, array]:
        """The samples as columns named like :class:`SampleRow`'s fields (the trace's own
        arrays: do not modify them)."""
        tr = self._trace
        cols = tr.columns
        return {
            "time_ns": tr.times,
            "thread": cols.thread,
            "flags": cols.flags,
            "stack": cols.stack,
        }


# -- a profile: the samples some filters kept ----------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """One row of ``flamekit top``: a frame, its self and total samples, and the number of
    samples in the profile (the denominator of the shares)."""

    frame: Frame
    self_samples: int
    total_samples: int
    selected: int

    @property
    def label(self) -> str:
        """``function (file[:line])``, unescaped (``top`` escapes control characters)."""
        return self.frame.label()

    @property
    def self_pct(self) -> float:
        return 100 * self.self_samples / self.selected

    @property
    def total_pct(self) -> float:
        return 100 * self.total_samples / self.selected


class Profile:
    """The samples of a recording that some filters kept, ready to rank or write.

    Made by :meth:`Recording.profile`; it may be empty (:attr:`why_empty`).
    :attr:`selection` is the layer below, which the converters and ``diff`` work on.
    """

    def __init__(self, recording: Recording, selection: Selection) -> None:
        self.recording = recording
        self.selection = selection

    def __len__(self) -> int:
        return len(self.selection)

    @property
    def options(self) -> FilterOptions:
        """The filters this profile was selected with."""
        return self.selection.options

    @property
    def why_empty(self) -> str | None:
        """Why no sample was selected, in one line ("the trace holds no samples", "no
        samples match the filters (...)"); None when some were."""
        return None if len(self) else explain_empty(self.selection.profile, self.options)

    def rank(self, by: str = "self", *, lines: bool = False) -> list[Ranked]:
        """``flamekit top``'s ranking, every row: frames by self (or total) samples.

        ``lines``: rank lines (``function (file:line)``) rather than functions.
        """
        frames = self.selection.profile.frames
        n = len(self.selection)
        return [
            Ranked(frames[r.frame], r.self_samples, r.total_samples, n)
            for r in rank(self.selection, lines=lines, by=by)
        ]

    def stack_counts(self, *, lines: bool = True) -> dict[tuple[Frame, ...], int]:
        """Samples per distinct stack of frames, root first (a per-thread profile starts
        each stack at its ``thread NAME (TID)`` frame)."""
        frames = self.selection.profile.frames
        return {
            tuple(frames[f] for f in stack): n
            for stack, n in self.selection.stack_counts(lines=lines).items()
        }

    def chunks(
        self,
        format: str,
        *,
        lines: bool = True,
        title: str = "",
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> Iterator[bytes]:
        """The profile in an output format (``formats()``), as the bytes ``convert`` writes,
        in chunks. ``lines``: frames per line (False: per function, ``--no-lines``);
        ``title``: for formats that show one (default: the recorded command line).

        ``max_output``: the most bytes the output may have (None: no limit). The format
        estimates its size first, and an output over it raises OutputTooLarge (an
        OutputError) here, before anything is made (``--max-output``)."""
        from flamekit.convert.base import ConvertOptions, get_format

        fmt = get_format(format)
        opts = ConvertOptions(lines=lines, title=title)
        if max_output is not None:
            check(f"{fmt.name} output", fmt.estimate(self.selection, opts, max_output), max_output)
        return iter(fmt.convert(self.selection, opts))

    def to_bytes(
        self,
        format: str,
        *,
        lines: bool = True,
        title: str = "",
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> bytes:
        """The whole output as one bytes object (see :meth:`chunks`)."""
        return b"".join(self.chunks(format, lines=lines, title=title, max_output=max_output))

    def write(
        self,
        format: str,
        path: str | os.PathLike[str],
        *,
        lines: bool = True,
        title: str = "",
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> int:
        """Write the output to ``path`` atomically (``"-"``: stdout); returns its size.

        The file appears whole or not at all, and never replaces the recording's own trace.
        An output over ``max_output`` bytes is refused before anything is written (see
        :meth:`chunks`).
        """
        out = os.fspath(path)
        refuse_inputs(out, [self.recording.path])
        chunks = self.chunks(format, lines=lines, title=title, max_output=max_output)
        return write_output(out, chunks, max_output=max_output)


# -- a recording -------------------------------------------------------------------------


class Recording:
    """An opened trace: its facts, threads, processes, samples, stacks and profiles."""

    def __init__(self, trace: Trace, *, full_filenames: bool = False) -> None:
        #: The trace model below (records by id, sample columns): for what this API lacks.
        self.trace = trace
        #: frames show files whole, not relative to their import roots (see :func:`open`)
        self.full_filenames = full_filenames

    def __len__(self) -> int:
        return len(self.trace)

    def __repr__(self) -> str:
        return f"<flamekit.Recording {self.path!r}: {len(self):,} samples>"

    @property
    def path(self) -> str:
        return self.trace.path

    @property
    def header(self) -> Header:
        """The HEADER record: target pid, command line, Python version, rate, mode."""
        return self.trace.header

    @property
    def truncated(self) -> bool:
        """Whether the file ends early (a recorder killed mid-write); it holds what it holds."""
        return self.trace.truncated

    @property
    def truncation(self) -> str:
        """Where and how a truncated file ends ("" when complete)."""
        return self.trace.truncation

    @property
    def duration_s(self) -> float:
        return self.trace.duration_ns / 1e9

    @cached_property
    def summary(self) -> Summary:
        """Everything ``flamekit info`` shows (``info --json`` prints exactly this)."""
        return summarize(self.trace)

    @property
    def threads(self) -> list[Thread]:
        """The threads, by process and then in the order they were first seen."""
        return threads_in_order(self.trace)

    def thread(self, ref: int) -> Thread:
        """The thread a sample's ``thread`` ref names."""
        return self.trace.threads[ref]

    @property
    def processes(self) -> list[Process]:
        return list(self.trace.processes.values())

    @property
    def samples(self) -> SampleRows:
        """Every sample as a row (time, thread, flags, stack id), in time order."""
        return SampleRows(self.trace)

    @cached_property
    def model(self) -> SymbolizedProfile:
        """The symbolized model: every distinct stack symbolized once, on first use."""
        return build_profile(self.trace, full_filenames=self.full_filenames)

    def stack(self, stack_id: int, *, lines: bool = True) -> tuple[Frame, ...]:
        """A stack id's frames, root (outermost) first; function-level if not ``lines``."""
        m = self.model
        return tuple(m.frames[f] for f in m.stack(stack_id, lines))

    def stacks(self, *, lines: bool = True) -> dict[int, tuple[Frame, ...]]:
        """Every stack id's frames, root first (stack 0: ``<no Python frames>``)."""
        return {sid: self.stack(sid, lines=lines) for sid in self.model.stacks}

    def profile(
        self,
        *,
        threads: Iterable[int] | None = None,
        idle: bool = False,
        gil: bool = False,
        start: float | None = None,
        end: float | None = None,
        per_thread: bool = False,
        pids: Iterable[int] | None = None,
        merge_processes: bool = False,
    ) -> Profile:
        """The samples that pass the filters, as the commands' options spell them.

        ``threads``: native thread ids to keep (``--thread``; None: all). ``idle``: keep
        idle samples (``--idle``). ``gil``: only samples holding the GIL (``--gil``).
        ``start``/``end``: the window [start, end) in seconds from the start of the
        recording (``--from``/``--until``). ``per_thread``: root each stack at a
        ``thread NAME (TID)`` frame (``--threads``). ``pids``: processes to keep
        (``--pid``; None: all). ``merge_processes``: one tree for a process tree's
        processes, not a ``process PID: COMMAND LINE`` root each (``--merge-processes``).
        """
        return self.select(
            FilterOptions(
                threads=per_thread,
                idle=idle,
                gil=gil,
                start_s=start,
                until_s=end,
                thread_ids=tuple(threads) if threads is not None else (),
                pids=tuple(pids) if pids is not None else (),
                merge_processes=merge_processes,
            )
        )

    def select(self, options: FilterOptions) -> Profile:
        """:meth:`profile` with the filters as one :class:`FilterOptions` (the commands')."""
        return Profile(self, select(self.model, options))

"""The in-memory model of a trace that converters, diff and info work from.

Samples stay in parallel typed arrays (a million samples is tens of MB, not hundreds);
everything a sample refers to is checked to exist, so later stages can index freely.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field, replace

from flamekit.errors import TraceError
from flamekit.trace import records as R
from flamekit.trace.reader import TraceReader
from flamekit.trace.samplecodec import (
    FLAG_GIL,
    FLAG_IDLE,
    SampleColumns,
    unpack_ids,
    unpack_into,
)


@dataclass(frozen=True)
class ProcessRun:
    """One program run by one process during the recording: from its PROCESS record to its
    PROCESS_END, or to the end of the trace. A process that execs a new program, or a pid
    that comes back for another process, is a new run: runs, not pids, are what a
    recording of a process tree is made of."""

    index: int  #: position in :attr:`Trace.runs`
    process: R.Process
    end: R.ProcessEnd | None = None  #: None: running when the trace ended

    @property
    def pid(self) -> int:
        return self.process.pid

    def label(self) -> str:
        """``process PID: command line``: how outputs name the run."""
        cmd = " ".join(self.process.cmdline) or "?"
        return f"process {self.process.pid}: {cmd}"


@dataclass
class Trace:
    """A whole trace: header, definitions by id, samples as columns, and how it ended."""

    path: str
    header: R.Header
    threads: dict[int, R.Thread] = field(default_factory=dict)
    #: pid -> its latest PROCESS record
    processes: dict[int, R.Process] = field(default_factory=dict)
    #: every process run, in the order the trace names them (see ProcessRun)
    runs: list[ProcessRun] = field(default_factory=list)
    #: thread ref -> index in ``runs`` of the run it belongs to
    thread_runs: dict[int, int] = field(default_factory=dict)
    codes: dict[int, R.Code] = field(default_factory=dict)
    stacks: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    #: per-sample columns: time (ns since the header's monotonic origin), thread ref,
    #: flags, stack id
    columns: SampleColumns = field(default_factory=SampleColumns)
    #: per-sample time in ns since the header's monotonic origin (``columns.time``)
    times: array = field(default_factory=lambda: array("q"))
    #: --native (format 1.3): pid -> its objects, in the order they appeared
    native_objects: dict[int, list[R.NativeObject]] = field(default_factory=dict)
    #: native stack id -> (instruction pointers innermost first, cut)
    native_stacks: dict[int, tuple[tuple[int, ...], bool]] = field(default_factory=dict)
    #: native stack id -> the eval ends recorded with it (NATIVE_STACK's ``eval_ends``)
    native_ends: dict[int, tuple[int, ...]] = field(default_factory=dict)
    #: per-sample native stack id (0: none), as long as the samples once any was read;
    #: empty for a trace without native stacks
    native: array = field(default_factory=lambda: array("Q"))
    #: code refs that stand for native functions once native stacks are merged into the
    #: Python ones (analysis.native), each with its object's file name; else empty
    native_codes: dict[int, str] = field(default_factory=dict)
    #: --native-lines: a native code ref's (source file, line), where DWARF gave one
    native_lines: dict[int, tuple[str, int]] = field(default_factory=dict)
    end: R.End | None = None
    truncated: bool = False
    truncation: str = ""
    size: int = 0

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def duration_ns(self) -> int:
        """Recorded duration: from the END record if present, else up to the last sample."""
        last = self.times[-1] if len(self.times) else 0
        if self.end is not None:
            return max(self.end.duration_ns, last)
        return last

    def run_of(self, thread_ref: int) -> ProcessRun:
        """The process run a thread (and so each of its samples) belongs to."""
        return self.runs[self.thread_runs[thread_ref]]

    def is_gil(self, i: int) -> bool:
        return bool(self.columns.flags[i] & FLAG_GIL)

    def is_idle(self, i: int) -> bool:
        return bool(self.columns.flags[i] & FLAG_IDLE)


def load(path: str | os.PathLike[str]) -> Trace:
    """Read a whole trace into a Trace, checking every reference.

    Raises TraceError for anything that is not a readable trace; a truncated file loads
    what it holds, with ``truncated`` set.
    """
    reader = TraceReader(path)
    builder = TraceBuilder(reader.path)
    for rec in reader:
        builder.add(rec)
    trace = builder.trace
    assert trace is not None  # the reader guarantees a header first
    trace.truncated = reader.truncated
    trace.truncation = reader.truncation
    trace.size = reader.size
    trace.times = trace.columns.time  # relative to the monotonic origin, as dt counts
    if trace.native and len(trace.native) < len(trace):  # samples after the last ids read
        trace.native.extend([0] * (len(trace) - len(trace.native)))
    return trace


class TraceBuilder:
    """A :class:`Trace` made record by record, each reference checked as it comes: what
    :func:`load` does with a file, and what a live view (``flamekit top -p``) does with the
    records of a recording as they are written, so both read a trace the same way."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.trace: Trace | None = None  #: once the header came
        self._current: dict[int, int] = {}  # pid -> index of its run not yet ended
        #: the samples the last record added, (first index, count), if it was SAMPLES
        self._last_samples: tuple[int, int] | None = None

    def add(self, rec: R.Record) -> None:
        """Take one record (the header first). Raises TraceError for a record that
        contradicts those before it."""
        p = self.path
        if isinstance(rec, R.Header):
            self.trace = Trace(path=p, header=rec)
            return
        trace = self.trace
        if trace is None:
            raise TraceError(f"{p}: corrupt FKT trace: a record before the header")
        last, self._last_samples = self._last_samples, None
        if isinstance(rec, R.Samples):
            cols = trace.columns
            n0 = len(cols)
            try:
                unpack_into(rec.blob, cols)
            except TraceError as exc:
                raise TraceError(f"{p}: corrupt FKT trace: {exc}") from None
            _check_refs(trace, n0, p)
            self._last_samples = (n0, len(cols) - n0)
        elif isinstance(rec, R.NativeSamples):
            _add_native(trace, rec, last, p)
        elif isinstance(rec, R.NativeStack):
            if rec.id in trace.native_stacks:
                raise TraceError(f"{p}: corrupt FKT trace: native stack {rec.id} defined twice")
            trace.native_stacks[rec.id] = (rec.ips, rec.cut)
            if rec.eval_ends is not None:
                trace.native_ends[rec.id] = rec.eval_ends
        elif isinstance(rec, R.NativeObject):
            trace.native_objects.setdefault(rec.pid, []).append(rec)
        elif isinstance(rec, R.Stack):
            if rec.id in trace.stacks:
                raise TraceError(f"{p}: corrupt FKT trace: stack id {rec.id} defined twice")
            for code_ref, _ in rec.frames:
                if code_ref not in trace.codes:
                    raise TraceError(
                        f"{p}: corrupt FKT trace: stack {rec.id} refers to undefined code {code_ref}"
                    )
            trace.stacks[rec.id] = rec.frames
        elif isinstance(rec, R.Code):
            if rec.ref in trace.codes:
                raise TraceError(f"{p}: corrupt FKT trace: code ref {rec.ref} defined twice")
            trace.codes[rec.ref] = rec
        elif isinstance(rec, R.Thread):
            trace.threads[rec.ref] = rec  # a later record renames the thread
            if rec.ref not in trace.thread_runs:
                trace.thread_runs[rec.ref] = _current_run(trace, self._current, rec.pid)
        elif isinstance(rec, R.Process):
            trace.processes[rec.pid] = rec
            self._current[rec.pid] = len(trace.runs)
            trace.runs.append(ProcessRun(len(trace.runs), rec))
        elif isinstance(rec, R.ProcessEnd):
            run = self._current.pop(rec.pid, None)
            if run is None:
                raise TraceError(
                    f"{p}: corrupt FKT trace: process {rec.pid} ends without having started"
                )
            trace.runs[run] = replace(trace.runs[run], end=rec)
        elif isinstance(rec, R.End):
            trace.end = rec


def _add_native(
    trace: Trace, rec: R.NativeSamples, last: tuple[int, int] | None, path: str
) -> None:
    """The native stack ids of the samples the SAMPLES record just before added."""
    bad = f"{path}: corrupt FKT trace: "
    if last is None:
        raise TraceError(bad + "native samples that follow no samples record")
    try:
        ids = unpack_ids(rec.blob)
    except TraceError as exc:
        raise TraceError(bad + str(exc)) from None
    start, count = last
    if len(ids) != count:
        raise TraceError(bad + f"{len(ids)} native stack ids for {count} samples")
    missing = set(ids).difference(trace.native_stacks)
    missing.discard(0)
    if missing:
        raise TraceError(bad + f"a sample refers to undefined native stack {min(missing)}")
    native = trace.native
    if len(native) < start:
        native.extend([0] * (start - len(native)))
    native.extend(ids)


def _current_run(trace: Trace, current: dict[int, int], pid: int) -> int:
    """The run a new thread of ``pid`` belongs to: the pid's current one (a writer names a
    process before its threads; a thread of a pid never named gets a run of its own)."""
    run = current.get(pid)
    if run is None:
        run = current[pid] = len(trace.runs)
        trace.runs.append(ProcessRun(run, R.Process(pid, 0, (), 0)))
    return run


def _check_refs(trace: Trace, start: int, path: str) -> None:
    cols = trace.columns
    bad_stacks = set(cols.stack[start:]).difference(trace.stacks)
    bad_stacks.discard(R.EMPTY_STACK)
    if bad_stacks:
        i = start + list(cols.stack[start:]).index(min(bad_stacks))
        raise TraceError(
            f"{path}: corrupt FKT trace: sample {i} refers to undefined stack {cols.stack[i]}"
        )
    bad_threads = set(cols.thread[start:]).difference(trace.threads)
    if bad_threads:
        i = start + list(cols.thread[start:]).index(min(bad_threads))
        raise TraceError(
            f"{path}: corrupt FKT trace: sample {i} refers to undefined thread {cols.thread[i]}"
        )

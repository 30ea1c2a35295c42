"""What ``flamekit info`` reports about a trace, as plain data (text and JSON render it).

The summary is a dict (``info --json`` prints it as it is) typed key by key, so that the
API's ``Recording.summary`` tells a type checker what each fact is.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from typing import TypedDict

from flamekit.trace import Thread, Trace
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE


class ThreadSummary(TypedDict):
    """One thread: its trace ref, process, kernel and Python ids, name, samples."""

    ref: int
    pid: int
    tid: int | None
    #: the thread's id in its own PID namespace (a container's), where that differs
    ns_tid: int | None
    python_id: int | None
    name: str | None
    samples: int
    first_seen_s: float


class ProcessSummary(TypedDict):
    """One process run of the recording (a process that execs is two: see ProcessRun).

    ``python_version`` None: a process watched but not recorded (not Python), or a trace
    older than format 1.2. ``start_s``: when the process started, seconds from the start
    of the recording (negative: before it), None if unknown. ``end_s``/``how``/``status``:
    its PROCESS_END, None while it ran to the end of a truncated trace."""

    pid: int
    ppid: int
    cmdline: list[str]
    python_version: str | None
    start_s: float | None
    end_s: float | None
    how: str | None
    status: int | None
    threads: int
    samples: int


class Summary(TypedDict):
    """Everything ``flamekit info`` shows (see :func:`summarize`)."""

    path: str
    size_bytes: int
    format_version: str
    flamekit_version: str
    complete: bool
    truncation: str | None
    end_reason: str | None
    end_error: str | None
    pid: int
    cmdline: list[str]
    python_version: str
    hostname: str
    kernel: str
    start_wall_ns: int
    mode: dict[str, bool]
    rate_hz: float
    duration_s: float
    samples: int
    effective_rate_hz: float
    sampling_errors: int | None
    cut_pauses: int | None
    idle_samples: int
    gil_samples: int
    code_objects: int
    stacks: int
    processes: list[ProcessSummary]
    bytes_per_sample: float | None
    threads: list[ThreadSummary]


def summarize(trace: Trace) -> Summary:
    """Facts about a trace: header, duration, sample and error counts, threads, truncation."""
    h = trace.header
    cols = trace.columns
    n = len(cols)
    per_thread = Counter(cols.thread)
    flags = Counter(cols.flags)
    idle = sum(c for f, c in flags.items() if f & FLAG_IDLE)
    gil = sum(c for f, c in flags.items() if f & FLAG_GIL)
    duration_s = trace.duration_ns / 1e9
    threads: list[ThreadSummary] = []
    for t in threads_in_order(trace):
        threads.append(
            {
                "ref": t.ref,
                "pid": t.pid,
                "tid": t.native_tid,
                "ns_tid": t.ns_tid,
                "python_id": t.py_thread_id,
                "name": t.name,
                "samples": per_thread.get(t.ref, 0),
                "first_seen_s": round(t.first_seen_ns / 1e9, 6),
            }
        )
    end = trace.end
    return {
        "path": trace.path,
        "size_bytes": trace.size,
        "format_version": ".".join(map(str, h.format_version)),
        "flamekit_version": h.flamekit_version,
        "complete": not trace.truncated,
        "truncation": trace.truncation or None,
        "end_reason": end.reason if end else None,
        "end_error": end.error if end else None,
        "pid": h.pid,
        "cmdline": list(h.cmdline),
        "python_version": h.python_version,
        "hostname": h.hostname,
        "kernel": h.kernel,
        "start_wall_ns": h.start_wall_ns,
        "mode": dict(h.mode),
        "rate_hz": h.rate_hz,
        "duration_s": round(duration_s, 6),
        "samples": n,
        "effective_rate_hz": round(_ticks(trace) / duration_s, 2) if duration_s > 0 else 0.0,
        "sampling_errors": end.errors if end else None,
        "cut_pauses": end.cut_pauses if end else None,
        "idle_samples": idle,
        "gil_samples": gil,
        "code_objects": len(trace.codes),
        "stacks": len(trace.stacks),
        "processes": _processes(trace, per_thread),
        "bytes_per_sample": round(trace.size / n, 2) if n else None,
        "threads": threads,
    }


def _processes(trace: Trace, per_thread: Counter[int]) -> list[ProcessSummary]:
    threads: Counter[int] = Counter(trace.thread_runs.values())
    samples: Counter[int] = Counter()
    for ref, n in per_thread.items():
        samples[trace.thread_runs[ref]] += n
    out: list[ProcessSummary] = []
    for run in trace.runs:
        p, end = run.process, run.end
        out.append(
            {
                "pid": p.pid,
                "ppid": p.ppid,
                "cmdline": list(p.cmdline),
                "python_version": p.python_version,
                "start_s": None if p.start_ns is None else round(p.start_ns / 1e9, 6),
                "end_s": None if end is None else round(end.end_ns / 1e9, 6),
                "how": None if end is None else end.how,
                "status": None if end is None else end.status,
                "threads": threads.get(run.index, 0),
                "samples": samples.get(run.index, 0),
            }
        )
    return out


#: How each known mode flag reads, (when true, when false; "": the usual case, unsaid).
#: A flag a trace lacks says nothing (an older or synthetic trace may lack some).
MODE_WORDS: dict[str, tuple[str, str]] = {
    "launched": ("launched", "attached"),
    "pausing": ("pausing", "non-blocking"),
    "gil_only": ("GIL only", ""),
    "subprocesses": ("following subprocesses", ""),
}


def describe_mode(mode: dict[str, bool]) -> str:
    """The recording mode in words, ``attached, non-blocking, GIL only``.

    The header keeps flags (``{"pausing": False, "gil_only": True, ...}``); listing the
    true ones left an attached non-blocking recording as "default", which says nothing.
    Every known flag present is named either way, but for the usual all threads and no
    subprocesses; a flag of a newer recorder, unknown here, is named when true, so that
    no mode is hidden.
    """
    words = []
    for flag, (yes, no) in MODE_WORDS.items():
        if flag in mode:
            word = yes if mode[flag] else no
            if word:
                words.append(word)
    words += [k for k, v in sorted(mode.items()) if v and k not in MODE_WORDS]
    return ", ".join(words) or "unknown"


def threads_in_order(trace: Trace) -> list[Thread]:
    """The trace's threads by process, then in the order they were first seen."""
    return sorted(trace.threads.values(), key=lambda t: (t.pid, t.first_seen_ns, t.ref))


#: Samples closer than this (ns) belong to one sampling instant.
INSTANT_NS = 20_000


def _ticks(trace: Trace) -> int:
    """Sampling instants: samples of several threads taken at one tick count once."""
    times = trace.times
    if not len(times):
        return 0
    # Samples of one instant follow each other within microseconds (the recorder stamps
    # them all with the instant's time: dt 0). The next instant is at least a walk later,
    # but may be much less than a period later: a tick that ran late is followed by the
    # next one on the schedule (at 1000 Hz on a loaded machine, a quarter of the period
    # as the gap merged enough late ticks to put this 9% below the recorder's own count).
    period = 1e9 / trace.header.rate_hz if trace.header.rate_hz > 0 else 0
    gap = min(period / 4, INSTANT_NS)
    return 1 + sum(1 for a, b in zip(times, islice(times, 1, None)) if b - a >= gap)

"""Small facts several output formats need the same way: the time span, the period, names.

Kept out of the registry (the leading underscore) because it is not a format. Times are
ns since the recording's monotonic origin, like ``Trace.times``.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Sequence

from flamekit.analysis.filters import NS, Selection, seconds_ns
from flamekit.analysis.profile import Frame


def window_ns(sel: Selection) -> tuple[int, int]:
    """The span the selection covers, [start, end) in ns since the recording's origin.

    ``start`` is ``--from`` (or 0, the start of the recording). ``end`` is ``--until``
    when it falls inside the recording, else the recording's end (the END record's
    duration, or the last sample); never before the last selected sample, so that
    "every sample lies in [start, end]" holds whatever the trace says.
    """
    tr = sel.profile.trace
    opts = sel.options
    start = seconds_ns(opts.start_s) if opts.start_s is not None else 0
    end = tr.duration_ns
    if opts.until_s is not None:
        end = min(end, seconds_ns(opts.until_s))
    if len(sel):
        end = max(end, tr.times[sel.indices[-1]])
        start = min(start, tr.times[sel.indices[0]])
    return start, max(start, end)


def period_ns(sel: Selection) -> int:
    """The time one sample stands for: the nominal period, else the measured mean interval.

    The nominal period comes from the header's rate. A trace without one (rate 0) gets
    the recording's duration divided by the samples per thread, which is what the
    sampler achieved on average. Never below 1 ns.
    """
    nominal = sel.profile.trace.header.rate_hz
    if nominal > 0:
        return max(1, round(NS / nominal))
    tr = sel.profile.trace
    n = len(tr)
    threads = max(1, len(set(tr.columns.thread)))
    return max(1, round(tr.duration_ns * threads / n)) if n else 1


def next_same_thread(thread_col: Sequence[int]) -> array:
    """For every trace sample, the index of the next sample of the same thread, or -1.

    That next sample, selected or not, is where this sample's interval ends: the sampler
    looked at the thread again then. One pass over the trace.
    """
    n = len(thread_col)
    out = array("q", [-1]) * n
    last: dict[int, int] = {}
    get = last.get
    for i in range(n - 1, -1, -1):
        th = thread_col[i]
        out[i] = get(th, -1)
        last[th] = i
    return out


def json_str(s: str) -> str:
    """``s`` as a JSON string literal that any parser accepts.

    ASCII-only output: non-BMP characters become surrogate-pair escapes and lone
    surrogates (which a trace may carry and UTF-8 cannot) their own ``\\udXXX`` escape,
    both of which JSON allows. Control characters, quotes, backslashes are escaped by
    :func:`json.dumps`.
    """
    return json.dumps(s, ensure_ascii=True)


def frame_location(frame: Frame) -> int | None:
    """The line a frame points at: its line, else (function level) the function's first line."""
    if frame.line is not None:
        return frame.line
    return frame.firstlineno


def default_title(sel: Selection) -> str:
    """A title for formats that show one: the command line recorded, else the trace's name."""
    tr = sel.profile.trace
    cmd = " ".join(tr.header.cmdline)
    base = os.path.basename(tr.path)
    return f"{cmd} ({base})" if cmd else base

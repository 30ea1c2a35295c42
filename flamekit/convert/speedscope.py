"""speedscope's own JSON format: one ``sampled`` profile per thread, in real time.

speedscope (https://www.speedscope.app/file-format-schema.json) draws a sampled profile's
"Time Order" view by laying the samples end to end, each as wide as its weight, from
``startValue``. So the weights are durations in nanoseconds, chosen so that each sample's
box starts at the time it was taken:

* a sample stands for the interval until the sampler next looked at its thread (the next
  sample of that thread in the *trace*, selected or not; the nominal period for a
  thread's last sample), cut short by the next selected sample and by ``--until``;
* what is left between one selected sample's interval and the next (the thread was idle
  and ``--idle`` was not given, a ``--gil`` filter, the thread not yet started) is an
  *empty* sample: speedscope draws nothing there and attributes it to no frame;
* every thread's profile spans the same window (``--from`` or the recording's start, to
  ``--until`` or its end), so switching threads keeps the time axis.

Weights are positive integers (speedscope drops zero weights): two samples of one thread
at the same instant (the writer clamps time at 0) give the second one 1 ns. The file
holds every selected sample exactly once, so the non-empty samples count the selection.

Frames are shared: ``name`` is the qualified function name (or a synthetic frame's name:
``thread NAME (TID)`` with ``--threads``, ``<no Python frames>``), ``file`` and ``line``
where known (at function level the function's first line). Names are JSON-escaped to
ASCII; nothing is dropped or replaced. Optional keys are left out rather than ``null``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from flamekit import __version__
from flamekit.analysis.chunks import chunked
from flamekit.analysis.filters import Selection
from flamekit.analysis.profile import Frame
from flamekit.convert._common import (
    default_title,
    frame_location,
    json_str,
    next_same_thread,
    period_ns,
    window_ns,
)
from flamekit.convert.base import ConvertOptions, register

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def frame_json(frame: Frame) -> str:
    """One entry of ``shared.frames``."""
    parts = [f'"name":{json_str(frame.qualname)}']
    if frame.file:
        parts.append(f'"file":{json_str(frame.file)}')
    line = frame_location(frame)
    if line is not None and frame.file:
        parts.append(f'"line":{line}')
    return "{" + ",".join(parts) + "}"


class _Frames:
    """Speedscope frame indices, assigned in order of first use."""

    def __init__(self, sel: Selection) -> None:
        self.sel = sel
        self.index: dict[int, int] = {}
        self.order: list[int] = []
        self.stack_text: dict[tuple[int, int], str] = {}

    def stack(self, thread: int, sid: int, lines: bool) -> str:
        """The JSON list of frame indices, root first, of one (thread, stack id)."""
        key = (thread, sid)
        text = self.stack_text.get(key)
        if text is None:
            idx = []
            for fid in self.sel.stack_of(thread, sid, lines):
                i = self.index.get(fid)
                if i is None:
                    i = self.index[fid] = len(self.order)
                    self.order.append(fid)
                idx.append(str(i))
            text = self.stack_text[key] = "[" + ",".join(idx) + "]"
        return text


def _thread_profile(
    sel: Selection,
    frames: _Frames,
    thread: int,
    indices: array,
    nxt: array,
    start: int,
    end: int,
    period: int,
    lines: bool,
) -> tuple[list[str], list[int]]:
    """The samples (JSON lists) and weights (ns) of one thread, gaps as empty samples."""
    tr = sel.profile.trace
    times = tr.times
    stack_col = tr.columns.stack
    samples: list[str] = []
    weights: list[int] = []
    cursor = start
    n = len(indices)
    cut = end if sel.options.until_s is not None else None
    stack = frames.stack
    for k in range(n):
        i = indices[k]
        t = times[i]
        begin = t if t > cursor else cursor
        if begin > cursor:
            samples.append("[]")
            weights.append(begin - cursor)
        j = nxt[i]
        stop = times[j] if j >= 0 else t + period
        if k + 1 < n:
            t_next = times[indices[k + 1]]
            if t_next < stop:
                stop = t_next
        if cut is not None and stop > cut:
            stop = cut
        if stop <= begin:
            stop = begin + 1
        samples.append(stack(thread, stack_col[i], lines))
        weights.append(stop - begin)
        cursor = stop
    if cursor < end:
        samples.append("[]")
        weights.append(end - cursor)
    return samples, weights


@register("speedscope", ".speedscope.json", "speedscope JSON: one time-ordered profile per thread.")
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The speedscope document, streamed profile by profile (see the module doc)."""
    prof = sel.profile
    tr = prof.trace
    thread_col = tr.columns.thread
    by_thread: dict[int, array] = {}
    for i in sel.indices:
        th = thread_col[i]
        a = by_thread.get(th)
        if a is None:
            a = by_thread[th] = array("q")
        a.append(i)
    nxt = next_same_thread(thread_col)
    start, end = window_ns(sel)
    period = period_ns(sel)
    frames = _Frames(sel)
    threads = sorted(by_thread)  # trace order: thread refs are assigned as threads appear

    profiles: list[tuple[str, int, list[str], list[int]]] = []
    for th in threads:
        samples, weights = _thread_profile(
            sel, frames, th, by_thread[th], nxt, start, end, period, opts.lines
        )
        profiles.append((sel.thread_title(th), len(by_thread[th]), samples, weights))
        del by_thread[th]
    busiest = max(range(len(profiles)), key=lambda k: profiles[k][1]) if profiles else 0
    title = opts.title or default_title(sel)

    def parts() -> Iterator[str]:
        yield f'{{"$schema":{json_str(SCHEMA)},"name":{json_str(title)},'
        yield f'"exporter":{json_str(f"flamekit {__version__}")},"activeProfileIndex":{busiest},'
        yield '"shared":{"frames":['
        fr = prof.frames
        for k, fid in enumerate(frames.order):
            yield ("," if k else "") + frame_json(fr[fid])
        yield ']},"profiles":['
        for k, (name, _, samples, weights) in enumerate(profiles):
            stop = start + sum(weights)
            yield (
                f'{"," if k else ""}{{"type":"sampled","name":{json_str(name)},'
                f'"unit":"nanoseconds","startValue":{start},"endValue":{stop},"samples":['
            )
            yield from _joined(samples)
            yield '],"weights":['
            yield from _joined(map(str, weights))
            yield "]}"
            profiles[k] = (name, 0, [], [])  # free as we go
        yield "]}\n"

    return chunked(parts())


def _joined(items: Iterable[str], every: int = 4096, max_chars: int = 1 << 20) -> Iterator[str]:
    """``",".join(items)`` in pieces, so a million samples never make one huge string
    (nor 4096 samples of a 100,000-frame stack: pieces also end at ``max_chars``)."""
    buf: list[str] = []
    first = True
    size = 0
    for s in items:
        buf.append(s)
        size += len(s)
        if len(buf) >= every or size >= max_chars:
            yield ("" if first else ",") + ",".join(buf)
            first = False
            buf.clear()
            size = 0
    if buf:
        yield ("" if first else ",") + ",".join(buf)

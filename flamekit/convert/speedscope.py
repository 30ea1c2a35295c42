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
from flamekit.analysis.budget import (
    JSON_CHAR,
    Estimate,
    Shape,
    ceiling_fits,
    digits,
    digits_of_many,
    facts,
)
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
    """Speedscope frame indices, assigned in order of first use, and each stack's text.

    A stack's indices are joined once per stack id. With ``--threads`` a stack starts at
    its thread's frame, so its text is kept for one thread at a time
    (:meth:`next_thread`): 1,000 threads of one deep stack would otherwise hold a copy
    of it each, or join it anew each.
    """

    def __init__(self, sel: Selection, lines: bool) -> None:
        self.sel = sel
        self.lines = lines
        self.index: dict[int, int] = {}
        self.order: list[int] = []
        self.inner: dict[int, str] = {}  # stack id -> its indices, comma-separated
        self.text: dict[int, str] = {}  # stack id -> its JSON list on this thread

    def _idx(self, fid: int) -> str:
        i = self.index.get(fid)
        if i is None:
            i = self.index[fid] = len(self.order)
            self.order.append(fid)
        return str(i)

    def next_thread(self) -> None:
        if self.sel.keyed_by_thread:
            self.text.clear()

    def stack(self, thread: int, sid: int) -> str:
        """The JSON list of frame indices, root first, of stack ``sid`` on ``thread``."""
        text = self.text.get(sid)
        if text is None:
            head = [self._idx(f) for f in self.sel.root(thread)]
            inner = self.inner.get(sid)
            if inner is None:
                fids = self.sel.profile.stack(sid, self.lines)
                inner = self.inner[sid] = ",".join(map(self._idx, fids))
            text = self.text[sid] = "[" + ",".join([*head, inner]) + "]"
        return text


#: A position of a thread's sample list that is an empty sample (a gap), not a stack.
GAP = -1


def _thread_profile(
    sel: Selection,
    indices: array,
    nxt: array,
    start: int,
    end: int,
    period: int,
) -> tuple[array, array]:
    """A thread's samples (stack ids, :data:`GAP` for an empty sample) and weights (ns)."""
    tr = sel.profile.trace
    times = tr.times
    stack_col = tr.columns.stack
    samples = array("q")
    weights = array("q")
    cursor = start
    n = len(indices)
    cut = end if sel.options.until_s is not None else None
    for k in range(n):
        i = indices[k]
        t = times[i]
        begin = t if t > cursor else cursor
        if begin > cursor:
            samples.append(GAP)
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
        samples.append(stack_col[i])
        weights.append(stop - begin)
        cursor = stop
    if cursor < end:
        samples.append(GAP)
        weights.append(end - cursor)
    return samples, weights


def _by_thread(sel: Selection) -> dict[int, array]:
    """The selected sample indices of each thread, in time order."""
    thread_col = sel.profile.trace.columns.thread
    by_thread: dict[int, array] = {}
    for i in sel.indices:
        th = thread_col[i]
        a = by_thread.get(th)
        if a is None:
            a = by_thread[th] = array("q")
        a.append(i)
    return by_thread


def estimate(sel: Selection, opts: ConvertOptions, budget: int | None) -> Estimate:
    """Each sample's stack text (frame indices of at most the digits of the last index),
    the weights (whose digits are bounded through their total: the window, per thread),
    a gap per sample at most, the frames and the profiles' heads. First a ceiling: every
    sample on the deepest stack, every thread's head, every frame's name."""
    prof = sel.profile
    f = facts(sel, opts.lines)
    n, t = len(sel), f.threads
    index = digits(len(prof.frames)) + 1
    gaps = (2 * n + t) * 25  # a gap and its weight, a weight of a sample (<= 20 digits)
    top = n * ((f.deepest + 1) * index + 3) + gaps + len(prof.frames) * (50 + JSON_CHAR * f.labels)
    top += (
        t * (200 + JSON_CHAR * f.labels) + 300 + JSON_CHAR * len(opts.title or default_title(sel))
    )
    if ceiling_fits(top, budget):
        return Estimate(top)
    shape = Shape(sel, opts.lines)
    used = shape.frames()
    index = digits(max(len(used) - 1, 0)) + 1  # and its comma
    texts = shape.repeated(shape.costs(lambda _: index), 2)
    threads = set(map(prof.trace.columns.thread.__getitem__, sel.indices))
    n, t = len(sel), len(threads)
    start, end = window_ns(sel)
    weights = 2 * n + t
    numbers = digits_of_many(weights, t * (end - start + period_ns(sel)) + n) + weights
    gaps = 3 * (n + t)
    frames = sum(len(frame_json(prof.frames[f])) + 1 for f in used)
    heads = sum(len(json_str(sel.thread_title(th))) + 160 + 2 * digits(end) for th in threads)
    top = 300 + len(json_str(opts.title or default_title(sel)))
    return Estimate(top + frames + heads + texts + gaps + numbers)


@register(
    "speedscope",
    ".speedscope.json",
    "speedscope JSON: one time-ordered profile per thread.",
    estimate,
)
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The speedscope document, streamed thread by thread (see the module doc).

    Each thread's profile is written as soon as it is computed and its arrays dropped;
    the shared frames, complete only then, come last (JSON does not order keys).
    """
    prof = sel.profile
    by_thread = _by_thread(sel)
    nxt = next_same_thread(prof.trace.columns.thread)
    start, end = window_ns(sel)
    period = period_ns(sel)
    frames = _Frames(sel, opts.lines)
    threads = sorted(by_thread)  # trace order: thread refs are assigned as threads appear
    sizes = [len(by_thread[th]) for th in threads]
    busiest = max(range(len(threads)), key=sizes.__getitem__) if threads else 0
    title = opts.title or default_title(sel)

    def parts() -> Iterator[str]:
        yield f'{{"$schema":{json_str(SCHEMA)},"name":{json_str(title)},'
        yield f'"exporter":{json_str(f"flamekit {__version__}")},"activeProfileIndex":{busiest},'
        yield '"profiles":['
        for k, th in enumerate(threads):
            samples, weights = _thread_profile(sel, by_thread.pop(th), nxt, start, end, period)
            frames.next_thread()
            stack = frames.stack
            yield (
                f'{"," if k else ""}{{"type":"sampled","name":{json_str(sel.thread_title(th))},'
                f'"unit":"nanoseconds","startValue":{start},"endValue":{start + sum(weights)},'
                '"samples":['
            )
            yield from _joined("[]" if s == GAP else stack(th, s) for s in samples)
            yield '],"weights":['
            yield from _joined(map(str, weights))
            yield "]}"
        yield '],"shared":{"frames":['
        fr = prof.frames
        for k, fid in enumerate(frames.order):
            yield ("," if k else "") + frame_json(fr[fid])
        yield "]}}\n"

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

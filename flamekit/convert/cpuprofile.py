"""Chrome DevTools ``.cpuprofile``: a call tree plus every sample in time order.

The format V8's profiler writes and DevTools' Performance panel, VS Code and speedscope
load. Keeping the per-sample list in time order is what makes DevTools draw a flame
*chart* (time on the x axis), the view pyflame's ``--flamechart`` gave.

Layout, in the order readers expect it (older DevTools sniffed the file's start for
``{"nodes":[``):

* ``nodes``: the call tree, root first. The root is ``(root)`` and lists its children
  (a root without ``children`` makes DevTools drop every sample, silently). A node is one
  frame reached by one path from the root; ``hitCount`` is how many samples ended there.
  ``callFrame``: ``functionName`` is the qualified name; ``url`` the file;
  ``scriptId`` a string, one per file (``"0"`` for frames without one, as V8 does for
  its synthetic ones); ``lineNumber`` 0-based (the frame's line, or at function level
  the function's first line; -1 when unknown) and ``columnNumber`` 0 (-1 when the line
  is unknown): Python gives no columns.
* ``startTime``/``endTime``: microseconds on the recording's monotonic clock: the window
  (``--from``/``--until`` or the whole recording).
* ``samples``: the leaf node id of every selected sample, in time order, and
  ``timeDeltas``: microseconds since the previous sample (the first since ``startTime``).
  Times are rounded per sample, not per delta, so rounding never accumulates: the
  deltas add up to the last sample's time.

A .cpuprofile is one timeline. Samples of several threads are interleaved in it by time,
and DevTools gives each sample the time until the next one: the per-function *counts*
(hit counts) are right, but with several threads the chart's widths mix threads. Use
``--thread TID`` for one thread's true chart, or speedscope for one chart per thread.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator
from itertools import chain

from flamekit.analysis.budget import (
    JSON_CHAR,
    Estimate,
    Shape,
    ceiling_fits,
    counting_limit,
    digits,
    digits_of_many,
    facts,
)
from flamekit.analysis.chunks import chunked
from flamekit.analysis.filters import Selection
from flamekit.analysis.profile import NATIVE, PYTHON, Frame
from flamekit.convert._common import frame_location, json_str, window_ns
from flamekit.convert.base import ConvertOptions, register

ROOT_ID = 1


def _call_frame(frame: Frame, script_ids: dict[str, int]) -> str:
    if frame.kind in (PYTHON, NATIVE) and frame.file:
        sid = script_ids.setdefault(frame.file, len(script_ids) + 1)
        url = json_str(frame.file)
    else:
        sid = 0
        url = '""'
    line = frame_location(frame) if frame.kind == PYTHON else None
    if line is None or line <= 0:
        pos = '"lineNumber":-1,"columnNumber":-1'
    else:
        pos = f'"lineNumber":{line - 1},"columnNumber":0'
    return f'{{"functionName":{json_str(frame.qualname)},"scriptId":"{sid}","url":{url},{pos}}}'


#: Bytes of a node besides its call frame and numbers: ``,{"id":,"callFrame":,
#: "hitCount":,"children":[]}`` and its id's comma in its parent's children.
NODE_BYTES = 48


def estimate(sel: Selection, opts: ConvertOptions, budget: int | None) -> Estimate:
    """The call tree's nodes (counted exactly, :meth:`Shape.tree`), each with its call
    frame and numbers; a node id and a time delta per sample (the deltas' digits bounded
    through their total: the window, in microseconds). First a ceiling: every stack a
    branch of its own, under every thread, of the longest label."""
    n = len(sel)
    f = facts(sel, opts.lines)
    nodes = f.frames * (f.threads if sel.keyed_by_thread else 1) + f.threads
    node = NODE_BYTES + 80 + JSON_CHAR * f.labels + 3 * digits(nodes + 1) + digits(n)
    top = 300 + nodes * node + n * (digits(nodes + 1) + 22)
    if ceiling_fits(top, budget):
        return Estimate(top)
    shape = Shape(sel, opts.lines)
    frames = sel.profile.frames
    script_ids: dict[str, int] = {}
    costs = shape.costs(lambda fid: len(_call_frame(frames[fid], script_ids)) + NODE_BYTES)
    cap = (counting_limit(budget) or 1 << 62) // NODE_BYTES + 1
    nodes, size, stopped = shape.tree(costs, cap)
    ids = digits(nodes + 1)
    size += nodes * 2 * (ids + 1) + digits_of_many(nodes, n)  # id, child entry, hitCount
    start, end = window_ns(sel)
    samples = n * (ids + 1) + digits_of_many(n, (end - start) // 1000 + 1) + n
    return Estimate(300 + size + samples, stopped)


@register(
    "cpuprofile",
    ".cpuprofile",
    "Chrome DevTools .cpuprofile: call tree, samples in time order.",
    estimate,
)
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The .cpuprofile document (see the module doc); the sample lists are streamed."""
    prof = sel.profile
    tr = prof.trace
    times = tr.times
    thread_col = tr.columns.thread
    stack_col = tr.columns.stack
    rooted = sel.keyed_by_thread

    # The tree: node id per (parent node, frame id); parents/frames by node id.
    child_of: dict[tuple[int, int], int] = {}
    node_frame: list[int] = [-1, -1]  # index 0 unused, 1 is the root
    children: list[list[int]] = [[], []]
    leaf_of: dict[tuple[int, int], int] = {}

    def leaf(thread: int, sid: int) -> int:
        node = ROOT_ID
        for fid in chain(sel.root(thread), prof.stack(sid, opts.lines)):
            key = (node, fid)
            nxt = child_of.get(key)
            if nxt is None:
                nxt = child_of[key] = len(node_frame)
                node_frame.append(fid)
                children.append([])
                children[node].append(nxt)
            node = nxt
        return node

    origin = tr.header.start_monotonic_ns
    start, end = window_ns(sel)
    start_us = (origin + start + 500) // 1000
    end_us = max((origin + end + 500) // 1000, start_us)

    samples = array("q")
    deltas = array("q")
    prev = start_us
    for i in sel.indices:
        th = thread_col[i] if rooted else -1
        key = (th, stack_col[i])
        node = leaf_of.get(key)
        if node is None:
            node = leaf_of[key] = leaf(thread_col[i], stack_col[i])
        samples.append(node)
        ts = (origin + times[i] + 500) // 1000
        deltas.append(ts - prev)
        prev = ts
    end_us = max(end_us, prev)
    hits = Counter(samples)
    frames = prof.frames

    def parts() -> Iterator[str]:
        script_ids: dict[str, int] = {}
        yield '{"nodes":['
        yield (
            f'{{"id":{ROOT_ID},"callFrame":{{"functionName":"(root)","scriptId":"0","url":"",'
            f'"lineNumber":-1,"columnNumber":-1}},"hitCount":{hits.get(ROOT_ID, 0)},'
            f'"children":[{",".join(map(str, children[ROOT_ID]))}]}}'
        )
        for node in range(ROOT_ID + 1, len(node_frame)):
            yield (
                f',{{"id":{node},"callFrame":{_call_frame(frames[node_frame[node]], script_ids)},'
                f'"hitCount":{hits.get(node, 0)},"children":[{",".join(map(str, children[node]))}]}}'
            )
        yield f'],"startTime":{start_us},"endTime":{end_us},"samples":['
        yield from _joined(samples)
        yield '],"timeDeltas":['
        yield from _joined(deltas)
        yield "]}\n"

    return chunked(parts())


def _joined(values: array, every: int = 8192) -> Iterator[str]:
    """Comma-separated integers in pieces."""
    for k in range(0, len(values), every):
        yield ("," if k else "") + ",".join(map(str, values[k : k + every]))

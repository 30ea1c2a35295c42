"""An interactive flame graph as one self-contained SVG file (hover, click to zoom, search).

The selection's stacks are merged into a tree (root first; with ``--threads`` the first
level is one ``thread NAME (TID)`` frame per thread) and drawn by
:mod:`flamekit.convert.flamegraph_svg`, which ``diff`` reuses. Frames are labelled
``function (file:line)`` (``function (file)`` with ``--no-lines``) and coloured by
function, so a function's lines share a colour. The root, ``all``, counts every
selected sample.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from flamekit.analysis.budget import (
    TEXT_CHAR,
    Estimate,
    Shape,
    ceiling_fits,
    counting_limit,
    digits,
    facts,
)
from flamekit.analysis.chunks import chunked
from flamekit.analysis.filters import Rooted, Selection
from flamekit.analysis.profile import Profile
from flamekit.convert._common import default_title
from flamekit.convert.base import ConvertOptions, register
from flamekit.convert.flamegraph_svg import (
    FRAME_BYTES,
    FlameNode,
    frame_bytes,
    narrowest,
    order_by_name,
    render,
)
from flamekit.convert.flametree import SortedStacks, count_drawn


def build_tree(
    prof: Profile, counts: Mapping[tuple[int, ...], int], min_value: float = 0.0
) -> FlameNode:
    """The flame tree of frame-id stacks (root first) and their sample counts.

    Children are ordered by label, the flame graph convention, so that the picture
    depends only on the counts. Frames of a value under ``min_value`` are left out, and
    so is everything under them (see :func:`flamekit.convert.flamegraph_svg.narrowest`).
    """
    return build_rooted_tree(prof, {(None, s): n for s, n in counts.items()}, min_value)


def _groups(rooted: Mapping[Rooted, int]) -> list[tuple[int | None, SortedStacks]]:
    """The stacks of each root (None: no root), sorted, in the order roots first appear."""
    by_root: dict[int | None, list[tuple[tuple[int, ...], tuple[int]]]] = {}
    for (root, stack), n in rooted.items():
        by_root.setdefault(root, []).append((stack, (n,)))
    return [(root, SortedStacks(items)) for root, items in by_root.items()]


def build_rooted_tree(
    prof: Profile, rooted: Mapping[Rooted, int], min_value: float = 0.0
) -> FlameNode:
    """:func:`build_tree` of stacks whose thread root is kept apart
    (:meth:`~flamekit.analysis.filters.Selection.rooted_counts`): the roots are the first
    level, and no stack is copied under its root. Only frames drawn get a node."""
    groups = _groups(rooted)
    frames = prof.frames
    labels: dict[int, str] = {}

    def node(fid: int, value: int) -> FlameNode:
        label = labels.get(fid)
        if label is None:
            label = labels[fid] = prof.label(fid)
        fr = frames[fid]
        return FlameNode(label, value, key=(fr.qualname, fr.file), kind=fr.kind)

    def wide(value: int) -> bool:
        return value > 0 and value >= min_value

    root = FlameNode("all", sum(st.value(0, len(st)) for _, st in groups), kind="root")
    work: list[tuple[FlameNode, SortedStacks, int, int, int]] = []
    for r, st in groups:
        if r is None:
            work.append((root, st, 0, len(st), 0))
        elif wide(st.value(0, len(st))):
            top = node(r, st.value(0, len(st)))
            root.children.append(top)
            work.append((top, st, 0, len(st), 0))
    while work:
        parent, st, lo, hi, depth = work.pop()
        kids = [
            (node(fid, v), a, b)
            for fid, a, b in st.runs(lo, hi, depth)
            if wide(v := st.value(a, b))
        ]
        parent.children.extend(k for k, _, _ in kids)
        work.extend((k, st, a, b, depth + 1) for k, a, b in kids)
    order_by_name(root)
    return root


def estimate(sel: Selection, opts: ConvertOptions, budget: int | None) -> Estimate:
    """The drawn frames' bytes (:func:`~flamekit.convert.flametree.count_drawn`) and the
    document's own (its script and style, about 6 KB). First a ceiling: every frame of
    every stack drawn, under every thread, with the longest label."""
    total = len(sel)
    f = facts(sel, opts.lines)
    nodes = f.frames * (f.threads if sel.keyed_by_thread else 1) + f.threads + 1
    top = 16384 + nodes * (FRAME_BYTES + 4 * digits(total) + 2 * TEXT_CHAR * f.labels)
    if ceiling_fits(top, budget):
        return Estimate(top)
    shape = Shape(sel, opts.lines)
    costs = shape.costs(lambda fid: frame_bytes(sel.profile.label(fid), total))
    cap = (counting_limit(budget) or 1 << 62) // FRAME_BYTES + 1
    nodes, size, stopped = count_drawn(_groups(shape.rooted), costs, narrowest(total), cap)
    title, subtitle = _titles(sel, opts)
    head = len("".join(render(FlameNode("all", total), title=title, subtitle=subtitle)).encode())
    return Estimate(head + frame_bytes("all", total) + size, stopped)


def _titles(sel: Selection, opts: ConvertOptions) -> tuple[str, str]:
    """The graph's title and subtitle (what was selected, from which file)."""
    what = []
    if sel.per_process:
        what.append("per process")
    if sel.options.threads:
        what.append("per thread")
    if sel.options.idle:
        what.append("idle included")
    if sel.options.gil:
        what.append("GIL holders only")
    subtitle = f"{len(sel):,} samples from {os.path.basename(sel.profile.trace.path)}" + (
        f" ({', '.join(what)})" if what else ""
    )
    return opts.title or default_title(sel), subtitle


@register("svg", ".svg", "Interactive flame graph (SVG: hover, click to zoom, search).", estimate)
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The flame graph document, streamed."""
    root = build_rooted_tree(sel.profile, sel.rooted_counts(lines=opts.lines), narrowest(len(sel)))
    title, subtitle = _titles(sel, opts)
    return chunked(render(root, title=title, subtitle=subtitle))

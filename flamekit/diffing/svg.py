"""A differential flame graph: shaped like b, red where a frame grew, blue where it shrank.

The tree is b's (widths are b's sample counts, so the picture is "the profile now"), and
each frame is coloured by the change in its *total* share between a and b: the same
quantity its width shows, so "red" reads as "this box is wider than it was". The hover
text gives both shares and the self change too. Intensity is the change relative to the
largest change in the graph, but never relative to less than :data:`FULL_SCALE_PP`
points, so that sampling noise between two runs of the same code stays pale instead of
being stretched to full red and blue.

Frames only a had cannot appear in a graph of b; the subtitle says how much of a's time
was on stacks b does not have. Drawing, escaping and interaction (hover, zoom, search)
are :mod:`flamekit.convert.flamegraph_svg`'s, the same as ``convert --to svg``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flamekit.analysis.budget import Estimate, counting_limit
from flamekit.analysis.chunks import chunked
from flamekit.convert.flamegraph_svg import (
    FRAME_BYTES,
    FlameNode,
    diff_colour,
    frame_bytes,
    narrowest,
    order_by_name,
    render,
)
from flamekit.convert.flametree import SortedStacks, count_drawn
from flamekit.diffing.model import Diff, Key

#: Changes of this many percentage points or more can reach full colour.
FULL_SCALE_PP = 5.0


class _Tree:
    """The merged stacks of both sides, per thread root, sorted for walking
    (:mod:`flamekit.convert.flametree`): weights (b, a), keys interned as integers."""

    def __init__(self, diff: Diff) -> None:
        self.keys: list[Key] = []
        ids: dict[Key, int] = {}

        def intern(k: Key) -> int:
            i = ids.get(k)
            if i is None:
                i = ids[k] = len(self.keys)
                self.keys.append(k)
            return i

        stacks: dict[int, tuple[int, ...]] = {}  # a stack's ints, by id(), once
        by_root: dict[int | None, list[tuple[tuple[int, ...], tuple[int, int]]]] = {}
        for (root, sk), (ca, cb) in diff.rooted.items():
            ints = stacks.get(id(sk))
            if ints is None:
                ints = stacks[id(sk)] = tuple(map(intern, sk))
            r = None if root is None else intern(root)
            by_root.setdefault(r, []).append((ints, (cb, ca)))
        self.groups = [(r, SortedStacks(items)) for r, items in by_root.items()]


def _pp(x: float) -> str:
    return f"{x:+.2f}" if round(x, 2) != 0 else "0.00"


def build_diff_tree(diff: Diff) -> FlameNode:
    """The flame tree of b with each frame's change as its colour key (see module doc).

    ``key`` is the change in total share, b - a, divided by the colour scale, in
    [-1, 1]; ``detail`` is the hover text after the name (no parentheses: the drawing's
    script strips the last parenthesised group to find the name). Only frames wide enough
    to draw get a node; the scale is taken over every frame of b, drawn or not.
    """
    tree = _Tree(diff)
    n_a, n_b = diff.a.selected, diff.b.selected

    def change(b: int, a: int) -> float:
        return 100.0 * (b / n_b - a / n_a)

    # The scale: the largest change among frames of b (b > 0), drawn or not. A group's
    # root (a thread) is a frame of its own.
    scale = FULL_SCALE_PP
    walk: list[tuple[SortedStacks, int, int, int]] = []
    for r, st in tree.groups:
        if r is not None and st.value(0, len(st)):
            scale = max(scale, abs(change(st.value(0, len(st)), st.value(0, len(st), 1))))
        walk.append((st, 0, len(st), 0))
    while walk:
        st, lo, hi, depth = walk.pop()
        for _, a, b in st.runs(lo, hi, depth):
            if st.value(a, b):
                scale = max(scale, abs(change(st.value(a, b), st.value(a, b, 1))))
                if b - a > 1:  # one stack is a chain of frames of one change: seen
                    walk.append((st, a, b, depth + 1))

    labels: dict[int, str] = {}

    def node(k: int, st: SortedStacks, a: int, b: int, depth: int) -> FlameNode:
        label = labels.get(k)
        if label is None:
            label = labels[k] = diff.label(tree.keys[k])
        tb, ta = st.value(a, b), st.value(a, b, 1)
        sb, sa = st.own(a, b, depth), st.own(a, b, depth, 1)
        d = change(tb, ta)
        self_d = 100.0 * (sb / n_b - sa / n_a)
        detail = (
            f"{tb:,} samples, {100 * tb / n_b:.2f}% in b, {100 * ta / n_a:.2f}% in a: "
            f"{_pp(d)} points; self {_pp(self_d)} points" + ("; new in b" if not ta else "")
        )
        return FlameNode(
            label, tb, key=d / scale, kind=diff.frames[tree.keys[k]].kind, detail=detail
        )

    least = narrowest(n_b)
    root = FlameNode(
        "all",
        n_b,
        key=0.0,
        kind="root",
        detail=f"{n_b:,} samples of b, {diff.a.selected:,} of a",
    )
    work: list[tuple[FlameNode, SortedStacks, int, int, int]] = []
    for r, st in tree.groups:
        if r is None:
            work.append((root, st, 0, len(st), 0))
        elif st.value(0, len(st)) and st.value(0, len(st)) >= least:
            top = node(r, st, 0, len(st), -1)  # own(..., -1): a root holds no samples
            root.children.append(top)
            work.append((top, st, 0, len(st), 0))
    while work:
        parent, st, lo, hi, depth = work.pop()
        for k, a, b in st.runs(lo, hi, depth):
            v = st.value(a, b)
            if v and v >= least:  # only in a (v 0), or too narrow to draw: not drawn
                child = node(k, st, a, b, depth + 1)
                parent.children.append(child)
                work.append((child, st, a, b, depth + 1))
    order_by_name(root)
    return root


def estimate(diff: Diff, budget: int | None) -> Estimate:
    """The drawn frames' bytes (as :func:`~flamekit.convert.flametree.count_drawn` counts
    them, with their hover detail) and the document's own."""
    tree = _Tree(diff)
    n_b = diff.b.selected
    costs = [frame_bytes(diff.label(k), n_b) + 80 for k in tree.keys]
    cap = (counting_limit(budget) or 1 << 62) // FRAME_BYTES + 1
    nodes, size, stopped = count_drawn(tree.groups, costs, narrowest(n_b), cap)
    head = 8192 + 4 * len(diff.a.path.encode("utf-8", "surrogateescape"))
    return Estimate(head + 4 * len(diff.b.path.encode("utf-8", "surrogateescape")) + size, stopped)


def render_svg(diff: Diff, title: str = "") -> Iterator[bytes]:
    """The differential flame graph document as UTF-8 chunks."""
    root = build_diff_tree(diff)
    gone = sum(ca for ca, cb in diff.rooted.values() if not cb)
    a_name, b_name = os.path.basename(diff.a.path), os.path.basename(diff.b.path)
    granularity = "lines" if diff.lines else "functions"
    subtitle = (
        f"{b_name} ({diff.b.selected:,} samples) against {a_name} ({diff.a.selected:,}): "
        f"widths from {b_name}; red grew, blue shrank, in share of samples, by {granularity}"
    )
    if gone:
        subtitle += (
            f"; {100 * gone / diff.a.selected:.2f}% of {a_name}'s samples are on stacks "
            f"{b_name} does not have (not drawn)"
        )
    return chunked(
        render(
            root,
            title=title or f"Differential flame graph: {a_name} -> {b_name}",
            subtitle=subtitle,
            colour=diff_colour,
        )
    )

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

from flamekit.analysis.chunks import chunked
from flamekit.convert.flamegraph_svg import FlameNode, diff_colour, render
from flamekit.diffing.model import Diff, Key

#: Changes of this many percentage points or more can reach full colour.
FULL_SCALE_PP = 5.0


class _Entry:
    """One node of the merged tree: total and self samples on each side, children by key."""

    __slots__ = ("a", "b", "self_a", "self_b", "children")

    def __init__(self) -> None:
        self.a = self.b = self.self_a = self.self_b = 0
        self.children: _Level = {}


_Level = dict[Key, _Entry]


def _merge(diff: Diff) -> tuple[_Level, int]:
    """The merged path tree of both sides' stacks; returns (first level, b's samples)."""
    top: _Level = {}
    for sk, (ca, cb) in diff.stacks.items():
        level = top
        entry = None
        for k in sk:
            entry = level.get(k)
            if entry is None:
                entry = level[k] = _Entry()
            entry.a += ca
            entry.b += cb
            level = entry.children
        if entry is not None:
            entry.self_a += ca
            entry.self_b += cb
    return top, diff.b.selected


def _pp(x: float) -> str:
    return f"{x:+.2f}" if round(x, 2) != 0 else "0.00"


def build_diff_tree(diff: Diff) -> FlameNode:
    """The flame tree of b with each frame's change as its colour key (see module doc).

    ``key`` is the change in total share, b - a, divided by the colour scale, in
    [-1, 1]; ``detail`` is the hover text after the name (no parentheses: the drawing's
    script strips the last parenthesised group to find the name).
    """
    top, n_b = _merge(diff)
    n_a = diff.a.selected
    changes: list[float] = []

    def change(e: _Entry) -> float:
        return 100.0 * (e.b / n_b - e.a / n_a)

    # The scale: the largest change among frames that will be drawn (b > 0).
    work = [top]
    while work:
        level = work.pop()
        for e in level.values():
            if e.b:
                changes.append(abs(change(e)))
                work.append(e.children)
    scale = max([FULL_SCALE_PP, *changes])

    labels: dict[Key, str] = {}

    def label(k: Key) -> str:
        s = labels.get(k)
        if s is None:
            s = labels[k] = diff.label(k)
        return s

    root = FlameNode(
        "all",
        n_b,
        key=0.0,
        kind="root",
        detail=f"{n_b:,} samples of b, {diff.a.selected:,} of a",
    )
    stack: list[tuple[FlameNode, _Level]] = [(root, top)]
    while stack:
        node, level = stack.pop()
        for k in sorted(level, key=label):
            e = level[k]
            if not e.b:
                continue  # only in a: nothing to draw in b's shape
            d = change(e)
            self_d = 100.0 * (e.self_b / n_b - e.self_a / n_a)
            detail = (
                f"{e.b:,} samples, {100 * e.b / n_b:.2f}% in b, {100 * e.a / n_a:.2f}% in a: "
                f"{_pp(d)} points; self {_pp(self_d)} points" + ("; new in b" if not e.a else "")
            )
            child = FlameNode(label(k), e.b, key=d / scale, kind=diff.frames[k].kind, detail=detail)
            node.children.append(child)
            if e.children:
                stack.append((child, e.children))
    return root


def render_svg(diff: Diff, title: str = "") -> Iterator[bytes]:
    """The differential flame graph document as UTF-8 chunks."""
    root = build_diff_tree(diff)
    gone = sum(ca for ca, cb in diff.stacks.values() if not cb)
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

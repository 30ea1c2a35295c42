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
from collections.abc import Iterator

from flamekit.analysis.chunks import chunked
from flamekit.analysis.filters import Selection
from flamekit.analysis.profile import Profile
from flamekit.convert._common import default_title
from flamekit.convert.base import ConvertOptions, register
from flamekit.convert.flamegraph_svg import FlameNode, render


def build_tree(prof: Profile, counts: dict[tuple[int, ...], int]) -> FlameNode:
    """The flame tree of frame-id stacks (root first) and their sample counts.

    Children are ordered by label, the flame graph convention, so that the picture
    depends only on the counts.
    """
    # frame id -> [value, children dict] per level
    top: dict[int, list] = {}
    total = 0
    for stack, n in counts.items():
        total += n
        level = top
        for fid in stack:
            entry = level.get(fid)
            if entry is None:
                entry = level[fid] = [0, {}]
            entry[0] += n
            level = entry[1]
    labels: dict[int, str] = {}

    def label(fid: int) -> str:
        s = labels.get(fid)
        if s is None:
            s = labels[fid] = prof.label(fid)
        return s

    root = FlameNode("all", total, kind="root")
    work = [(root, top)]
    frames = prof.frames
    while work:
        node, level = work.pop()
        for fid in sorted(level, key=label):
            value, sub = level[fid]
            fr = frames[fid]
            child = FlameNode(label(fid), value, key=(fr.qualname, fr.file), kind=fr.kind)
            node.children.append(child)
            if sub:
                work.append((child, sub))
    return root


@register("svg", ".svg", "Interactive flame graph (SVG: hover, click to zoom, search).")
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The flame graph document, streamed."""
    prof = sel.profile
    root = build_tree(prof, sel.stack_counts(lines=opts.lines))
    tr = prof.trace
    what = []
    if sel.per_process:
        what.append("per process")
    if sel.options.threads:
        what.append("per thread")
    if sel.options.idle:
        what.append("idle included")
    if sel.options.gil:
        what.append("GIL holders only")
    subtitle = f"{len(sel):,} samples from {os.path.basename(tr.path)}" + (
        f" ({', '.join(what)})" if what else ""
    )
    return chunked(render(root, title=opts.title or default_title(sel), subtitle=subtitle))

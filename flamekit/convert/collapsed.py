"""Collapsed (folded) stacks: ``root;...;leaf COUNT`` per distinct stack.

The format flamegraph.pl, inferno and speedscope read. Readers split the count off at the
last whitespace and the frames at ``;``, one stack per LF-terminated line, so a frame
label may hold spaces but never ``;`` or a line break. Labels are escaped reversibly
(:func:`escape_frame`): ``\\`` becomes ``\\\\``, ``;`` becomes ``\\x3b`` and every control
or line-separator character its ``\\xNN``/``\\uNNNN`` escape; everything else, non-BMP
characters included, is written as UTF-8. Labels end in ``)`` (or ``>``), never in
``<space><digits>``, which readers would take for a second count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flamekit.analysis.chunks import chunked
from flamekit.analysis.escape import escaper
from flamekit.analysis.filters import Selection
from flamekit.convert.base import ConvertOptions, register

#: A frame label made safe for one field of a folded line (reversible, see module doc):
#: what a line-based reader could split on (``;``, line breaks), the escape character
#: itself, and everything the text escaper escapes (controls, lone surrogates, which
#: cannot be encoded as UTF-8).
escape_frame: Callable[[str], str] = escaper(also="\\;", spelled={"\\": "\\\\"})


def unescape_frame(text: str) -> str:
    """The inverse of :func:`escape_frame` (for tests and tools reading our output)."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "\\":
            out.append("\\")
            i += 2
        elif nxt == "x":
            out.append(chr(int(text[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:  # not produced by escape_frame; keep it as it is
            out.append(c)
            i += 1
    return "".join(out)


@register("collapsed", ".collapsed", "Folded stacks: flamegraph.pl, inferno, speedscope.")
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """One ``frames COUNT`` line per distinct stack, sorted, frames root first."""
    prof = sel.profile
    labels: dict[int, str] = {}

    def label(fid: int) -> str:
        s = labels.get(fid)
        if s is None:
            s = labels[fid] = escape_frame(prof.label(fid))
        return s

    lines = sorted(
        f"{';'.join(map(label, stack))} {count}\n"
        for stack, count in sel.stack_counts(lines=opts.lines).items()
    )
    return chunked(lines)

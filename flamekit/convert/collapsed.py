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

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from flamekit.analysis.budget import Estimate, Shape, digits
from flamekit.analysis.chunks import chunked
from flamekit.analysis.escape import escaper
from flamekit.analysis.filters import Selection
from flamekit.convert.base import ConvertOptions, register

#: A frame label made safe for one field of a folded line (reversible, see module doc):
#: what a line-based reader could split on (``;``, line breaks), the escape character
#: itself, and everything the text escaper escapes (controls, lone surrogates, which
#: cannot be encoded as UTF-8).
escape_frame: Callable[[str], str] = escaper(also="\\;", spelled={"\\": "\\\\"})

T = TypeVar("T")


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


def _elements(sel: Selection, lines: bool) -> Callable[[int], str]:
    """A frame id's label as a line element: escaped, then ``;``."""
    label = sel.profile.label
    cache: dict[int, str] = {}

    def element(fid: int) -> str:
        s = cache.get(fid)
        if s is None:
            s = cache[fid] = escape_frame(label(fid)) + ";"
        return s

    return element


def estimate(sel: Selection, opts: ConvertOptions, budget: int | None) -> Estimate:
    """Every line's bytes (lines that symbolize alike, merged in the output, counted apart)."""
    element = _elements(sel, opts.lines)
    shape = Shape(sel, opts.lines)
    costs = shape.costs(lambda fid: len(element(fid).encode("utf-8")))
    return Estimate(shape.lines(costs, lambda n: digits(n) + 1))


@register("collapsed", ".collapsed", "Folded stacks: flamegraph.pl, inferno, speedscope.", estimate)
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """One ``frames COUNT`` line per distinct stack, sorted, frames root first."""
    return chunked(sorted_lines(sel.rooted_counts(lines=opts.lines), _elements(sel, opts.lines)))


def sorted_lines(
    rooted: Mapping[tuple[T | None, Sequence[T]], int | tuple[int, ...]],
    element: Callable[[T], str],
) -> Iterator[str]:
    """Folded lines ``root;frame;...;frame COUNT...``, in the order of the lines' text,
    without holding the text: lines sort as tuples of their elements (an element ends in
    ``;`` or, the last, in its counts and a line feed, characters an escaped label never
    holds), one root's lines at a time. ``rooted`` counts are one number or several
    (``diff``'s two sides).
    """
    groups: dict[T | None, list[tuple[Sequence[T], int | tuple[int, ...]]]] = {}
    for (root, stack), counts in rooted.items():
        groups.setdefault(root, []).append((stack, counts))
    for root in sorted(groups, key=lambda r: "" if r is None else element(r)):
        head = "" if root is None else element(root)
        keys = []
        for stack, counts in groups.pop(root):
            *body, last = map(element, stack)
            tail = " ".join(map(str, counts)) if isinstance(counts, tuple) else str(counts)
            keys.append((*body, f"{last[:-1]} {tail}\n"))
        keys.sort()
        for k in keys:
            yield head + "".join(k)

"""The diff's text outputs: the ranked table, its JSON twin, and differential folded stacks.

Each is a pure function from a :class:`~flamekit.diffing.model.Diff` (and its ranked rows)
to bytes, so the command only decides where the bytes go.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flamekit.analysis.budget import Estimate, digits
from flamekit.analysis.chunks import chunked
from flamekit.analysis.escape import printable
from flamekit.convert.collapsed import escape_frame, sorted_lines
from flamekit.diffing.model import Diff, Key, Row, Side

# -- the table ---------------------------------------------------------------------------


def _side_line(tag: str, side: Side, width: int) -> str:
    path = printable(side.path)
    text = f"{tag}: {path:<{width}}  {side.duration_ns / 1e9:8.2f} s  {side.samples:>10,} samples"
    if side.selected != side.samples:
        text += f" ({side.selected:,} selected)"
    if side.python_version:
        text += f"  Python {printable(side.python_version)}"
    if side.truncated:
        text += "  [truncated]"
    return text


def _pct(pct: float, present: bool) -> str:
    return f"{pct:7.2f}%" if present else f"{'-':>8}"


def _pp(diff: float) -> str:
    # Never print "-0.00": a change too small to show is no change.
    return f"{diff:+8.2f}" if round(diff, 2) != 0 else f"{0:8.2f}"


def render_table(
    diff: Diff, rows: Sequence[Row], by: str = "self", shown: int | None = None
) -> str:
    """The human table: a header naming both sides, then one line per row.

    ``rows`` are the rows to show (already cut to ``--top``); ``shown`` is how many rows
    there were before the cut, for the footer.
    """
    width = max(len(printable(diff.a.path)), len(printable(diff.b.path)))
    what = "lines" if diff.lines else "functions"
    out = [
        _side_line("a", diff.a, width),
        _side_line("b", diff.b, width),
        f"{what} ranked by change in {by} share: % of each side's selected samples; "
        "Δ = b - a in points (+ grew, - shrank); '-': absent from that side",
        f"{'Self a':>8} {'Self b':>8} {'ΔSelf':>8}  {'Total a':>8} {'Total b':>8} "
        f"{'ΔTotal':>8}  {'Function' if not diff.lines else 'Line'}",
    ]
    for r in rows:
        in_a, in_b = r.total_a > 0, r.total_b > 0
        out.append(
            f"{_pct(r.self_pct_a, in_a)} {_pct(r.self_pct_b, in_b)} "
            f"{_pp(r.self_diff)}  "
            f"{_pct(r.total_pct_a, in_a)} {_pct(r.total_pct_b, in_b)} "
            f"{_pp(r.total_diff)}  {printable(r.frame.label())}"
        )
    if shown is not None and shown > len(rows):
        out.append(f"({shown - len(rows):,} more {what} not shown; --top 0 shows all)")
    if not rows:
        out.append("(nothing to compare)")
    return "\n".join(out) + "\n"


# -- JSON --------------------------------------------------------------------------------


def _num(x: float) -> float:
    r = round(x, 6)
    return 0.0 if r == 0 else r  # no -0.0


def _side_json(side: Side) -> dict[str, Any]:
    return {
        "path": side.path,
        "duration_s": side.duration_ns / 1e9,
        "samples": side.samples,
        "selected": side.selected,
        "python_version": side.python_version,
        "truncated": side.truncated,
    }


def row_json(r: Row) -> dict[str, Any]:
    """One row as plain data: identity, status, counts, shares (%) and changes (points)."""
    f = r.frame
    return {
        "label": f.label(),
        "kind": f.kind,
        "function": f.qualname,
        "name": f.name,
        "file": f.file,
        "line": f.line,
        "status": r.status,
        "self_samples_a": r.self_a,
        "self_samples_b": r.self_b,
        "total_samples_a": r.total_a,
        "total_samples_b": r.total_b,
        "self_pct_a": _num(r.self_pct_a),
        "self_pct_b": _num(r.self_pct_b),
        "self_diff_pp": _num(r.self_diff),
        "total_pct_a": _num(r.total_pct_a),
        "total_pct_b": _num(r.total_pct_b),
        "total_diff_pp": _num(r.total_diff),
    }


def render_json(
    diff: Diff, rows: Sequence[Row], by: str = "self", shown: int | None = None
) -> bytes:
    """The table for machines: both sides' facts and every shown row, as UTF-8 JSON.

    Names are kept exactly; a lone surrogate (which UTF-8 cannot carry) is written as its
    ``\\uXXXX`` JSON escape.
    """
    doc = {
        "a": _side_json(diff.a),
        "b": _side_json(diff.b),
        "granularity": "line" if diff.lines else "function",
        "ranked_by": by,
        "rows_total": len(rows) if shown is None else shown,
        "rows": [row_json(r) for r in rows],
    }
    text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    return text.encode("utf-8", errors="backslashreplace")


# -- differential folded -----------------------------------------------------------------


def scale_counts(counts: Sequence[int], target: int) -> list[int]:
    """``counts`` scaled to sum to ``target``, as integers (largest-remainder rounding).

    Used to put side a on side b's scale: flamegraph.pl colours each stack by
    ``count_b - count_a``, which for recordings of different lengths would paint the
    whole graph one colour. Integers keep every reader happy; largest-remainder rounding
    keeps the total exact, so a trace against itself scales to itself.
    """
    total = sum(counts)
    if total == 0 or total == target:
        return list(counts)
    exact = [c * target / total for c in counts]
    out = [math.floor(x) for x in exact]
    short = target - sum(out)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:short]:
        out[i] += 1
    return out


def _elements(diff: Diff) -> Callable[[Key], str]:
    """A key's label as an element of a folded line: escaped, then ``;``."""
    cache: dict[Key, str] = {}

    def element(k: Key) -> str:
        s = cache.get(k)
        if s is None:
            s = cache[k] = escape_frame(diff.label(k)) + ";"
        return s

    return element


def render_difffolded(diff: Diff, normalize: bool = True) -> Iterator[bytes]:
    """``stack count_a count_b`` per merged stack, sorted, for flamegraph.pl's diff mode.

    Frames are escaped as in collapsed output (no ``;`` or line breaks inside a frame;
    labels never end in ``<space><digits>``). With ``normalize`` (the default) a's
    counts are scaled to b's total so colours show changes in *share*; without it both
    columns are raw sample counts. Stacks whose counts are both zero after scaling are
    left out (they draw nothing).
    """
    items = list(diff.rooted.items())
    a_counts = [ca for _, (ca, _) in items]
    if normalize:
        a_counts = scale_counts(a_counts, diff.b.selected)
    rooted = {rk: (ca, cb) for (rk, (_, cb)), ca in zip(items, a_counts) if ca or cb}
    return chunked(sorted_lines(rooted, _elements(diff)))


# -- sizes, before writing ---------------------------------------------------------------


def estimate_difffolded(diff: Diff) -> Estimate:
    """Every line's bytes: its frames, its root's, two counts (a's scaled to at most b's
    total, or its own)."""
    element = _elements(diff)
    sizes: dict[Key, int] = {}

    def size(k: Key) -> int:
        n = sizes.get(k)
        if n is None:
            n = sizes[k] = len(element(k).encode("utf-8"))
        return n

    per_stack: dict[int, int] = {}
    count = digits(max(diff.a.selected, diff.b.selected)) * 2 + 2
    total = 0
    for root, sk in diff.rooted:
        n = per_stack.get(id(sk))
        if n is None:
            n = per_stack[id(sk)] = sum(map(size, sk))
        total += n + (0 if root is None else size(root)) + count
    return Estimate(total)


def estimate_rows(diff: Diff, rows: Sequence[Row], as_json: bool) -> Estimate:
    """The table's or the JSON's bytes: a line (or an object) per row with its label (the
    JSON has it three times: label, function, file), and the head."""
    per_row, labels = (600, 3) if as_json else (80, 1)
    text = sum(len(r.frame.label().encode("utf-8", "backslashreplace")) for r in rows)
    head = 2048 + 4 * len((diff.a.path + diff.b.path).encode("utf-8", "surrogateescape"))
    return Estimate(head + per_row * len(rows) + labels * text * 6)

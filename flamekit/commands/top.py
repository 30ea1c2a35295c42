"""``flamekit top FILE``: the functions with the most samples, like ``py-spy top`` offline.

*Self* samples are those where the function is the innermost frame (it was running);
*total* samples those where it is anywhere on the stack (it or its callees were running),
counted once per sample even under recursion.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from flamekit import trace as fkt
from flamekit.analysis.filters import (
    FilterOptions,
    Selection,
    explain_empty,
    filter_options,
    select,
)
from flamekit.analysis.profile import build_profile
from flamekit.errors import TraceError, UsageError

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_PRINTABLE = str.maketrans(_CONTROL)


@dataclass(frozen=True)
class Row:
    """One ranked frame: its id in the profile, and its self and total sample counts."""

    frame: int
    self_samples: int
    total_samples: int


def rank(sel: Selection, lines: bool = False, by: str = "self") -> list[Row]:
    """Every frame with its self and total counts, most first (``by`` "self" or "total")."""
    self_n: dict[int, int] = {}
    total_n: dict[int, int] = {}
    for stack, n in sel.stack_counts(lines=lines).items():
        leaf = stack[-1]
        self_n[leaf] = self_n.get(leaf, 0) + n
        for f in set(stack):
            total_n[f] = total_n.get(f, 0) + n
    labels = sel.profile.label
    rows = [Row(f, self_n.get(f, 0), t) for f, t in total_n.items()]
    if by == "total":
        rows.sort(key=lambda r: (-r.total_samples, -r.self_samples, labels(r.frame)))
    else:
        rows.sort(key=lambda r: (-r.self_samples, -r.total_samples, labels(r.frame)))
    return rows


def render(sel: Selection, rows: list[Row]) -> str:
    """The table: percentages and counts, then the frame label (control chars escaped)."""
    n = len(sel)
    total = len(sel.profile.trace)
    head = f"{n:,} samples selected"
    head += f" of {total:,}" if n != total else ""
    out = [head, f"{'%Own':>7} {'%Total':>7} {'OwnSamples':>11} {'TotalSamples':>13}  Function"]
    for r in rows:
        out.append(
            f"{100 * r.self_samples / n:6.2f}% {100 * r.total_samples / n:6.2f}% "
            f"{r.self_samples:>11,} {r.total_samples:>13,}  "
            + sel.profile.label(r.frame).translate(_PRINTABLE)
        )
    return "\n".join(out)


@click.command("top")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--lines", is_flag=True, help="Rank lines ('function (file:line)'), not functions.")
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many rows to show (0: all).",
)
@click.option(
    "--sort",
    "by",
    type=click.Choice(["self", "total"]),
    default="self",
    show_default=True,
    help="Rank by self samples or by total samples.",
)
@filter_options
def command(file: str, lines: bool, limit: int, by: str, filters: FilterOptions) -> None:
    """Show the functions with the most samples in a trace (self and total)."""
    trace = fkt.load(file)
    if trace.truncated:
        click.echo(
            f"flamekit: warning: {file}: truncated trace, {trace.truncation}; "
            f"ranking the {len(trace):,} samples it holds",
            err=True,
        )
    if not len(trace):
        raise TraceError(f"{file}: the trace holds no samples")
    profile = build_profile(trace)
    sel = select(profile, filters)
    if not len(sel):
        raise UsageError(explain_empty(profile, filters))
    rows = rank(sel, lines=lines, by=by)
    click.echo(render(sel, rows[:limit] if limit else rows))

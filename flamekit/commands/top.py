"""``flamekit top FILE``: the functions with the most samples, like ``py-spy top`` offline.

A face over :meth:`flamekit.api.Profile.rank` (:mod:`flamekit.analysis.ranking`): *self*
samples are those where the function is the innermost frame (it was running), *total*
samples those where it is anywhere on the stack (it or its callees were running),
counted once per sample even under recursion.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from flamekit.analysis.escape import printable
from flamekit.analysis.filters import FilterOptions
from flamekit.analysis.ranking import BY
from flamekit.api import Profile, Ranked
from flamekit.commands._common import filter_options, full_filenames_option, open_profile


def render(prof: Profile, rows: Sequence[Ranked]) -> str:
    """The table: percentages and counts, then the frame label (control chars escaped)."""
    n = len(prof)
    total = len(prof.recording)
    head = f"{n:,} samples selected"
    head += f" of {total:,}" if n != total else ""
    out = [head, f"{'%Own':>7} {'%Total':>7} {'OwnSamples':>11} {'TotalSamples':>13}  Function"]
    for r in rows:
        out.append(
            f"{r.self_pct:6.2f}% {r.total_pct:6.2f}% "
            f"{r.self_samples:>11,} {r.total_samples:>13,}  " + printable(r.label)
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
    type=click.Choice(list(BY)),
    default="self",
    show_default=True,
    help="Rank by self samples or by total samples.",
)
@full_filenames_option
@filter_options
def command(
    file: str, lines: bool, limit: int, by: str, full_filenames: bool, filters: FilterOptions
) -> None:
    """Show the functions with the most samples in a trace (self and total)."""
    prof = open_profile(file, filters, "ranking", full_filenames)
    if prof.why_empty:  # a result: "no samples" is the answer, not an error
        click.echo(printable(f"{file}: {prof.why_empty}"))
        return
    rows = prof.rank(by, lines=lines)
    click.echo(render(prof, rows[:limit] if limit else rows))

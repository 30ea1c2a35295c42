"""``flamekit diff A B``: what got slower and what got faster between two recordings.

Opens both traces and selects each side's samples through :mod:`flamekit.api` with the
shared filters (:mod:`flamekit.commands._common`), matches frames by function and file
(:mod:`flamekit.diffing.model`), and writes the table, JSON, differential folded stacks
or a differential SVG flame graph. The table (and JSON) goes to stdout unless ``-o`` says
otherwise; the folded stacks and SVG, which are files for other tools, default to B's
name with the format's extension.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import click

from flamekit import api
from flamekit.analysis.budget import check
from flamekit.analysis.escape import printable
from flamekit.analysis.filters import FilterOptions
from flamekit.analysis.ranking import BY
from flamekit.commands._common import (
    debug_dir_option,
    filter_options,
    full_filenames_option,
    max_output_option,
    warn_if_truncated,
)
from flamekit.diffing.model import build_diff
from flamekit.diffing.outputs import (
    estimate_difffolded,
    estimate_rows,
    render_difffolded,
    render_json,
    render_table,
)
from flamekit.errors import FlamekitError, TraceError, UsageError
from flamekit.output import STDOUT, default_output_path, refuse_inputs, write_output
from flamekit.trace import Trace

#: --to choices; the value is the default output path's extension (None: stdout).
FORMATS: dict[str, str | None] = {
    "table": None,
    "json": None,
    "difffolded": ".difffolded",
    "svg": ".diff.svg",
}
#: How many rows the table shows unless --top says otherwise.
DEFAULT_TABLE_ROWS = 20


def _raise_all(errors: list[FlamekitError]) -> None:
    """Report every side's error, one line each; the last one sets the exit status.

    Both inputs are checked before giving up, so a user with two bad files learns about
    both at once.
    """
    if not errors:
        return
    for exc in errors[:-1]:
        click.echo(f"flamekit: error: {exc}", err=True)
    raise errors[-1]


def side_filters(trace: Trace, filters: FilterOptions) -> FilterOptions:
    """The filters for one side: ``--thread`` and ``--pid`` keep the listed TIDs and pids
    *this* trace has.

    Thread ids differ from run to run, so ``--thread 101 --thread 202`` can pick thread
    101 of A and thread 202 of B. A side with none of the TIDs keeps them all, so that
    :func:`flamekit.analysis.filters.select` reports it with the list of threads it does have.
    """
    if filters.thread_ids:
        have = {t.native_tid for t in trace.threads.values()}
        keep = tuple(t for t in filters.thread_ids if t in have)
        filters = replace(filters, thread_ids=keep) if keep else filters
    if filters.pids:  # pids too differ from run to run
        have = {run.pid for run in trace.runs}
        keep = tuple(p for p in filters.pids if p in have)
        filters = replace(filters, pids=keep) if keep else filters
    return filters


def say_empty(profiles: list[api.Profile], to: str, out: str, max_output: int | None) -> bool:
    """Whether a side selected no samples, saying so for each such side in one line.

    A share of nothing is undefined, so there is nothing to compare; but it is a result,
    not bad input (exit 0). The table is for people: the lines are what it shows, where
    it would have gone. The other formats are for tools: nothing is written where they
    read, and the lines are warnings."""
    empty = [
        f"{p.recording.path}: {p.why_empty}; nothing to compare" for p in profiles if p.why_empty
    ]
    if empty and to == "table":
        text = "".join(printable(line) + "\n" for line in empty)
        write_output(out, [text.encode("utf-8", "backslashreplace")], max_output=max_output)
    else:
        for line in empty:
            click.echo(f"flamekit: warning: {line}", err=True)
    return bool(empty)


@click.command("diff")
@click.argument("a", type=click.Path(dir_okay=True, path_type=str))
@click.argument("b", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--to",
    "to",
    type=click.Choice(list(FORMATS)),
    default="table",
    show_default=True,
    help="table: ranked changes for people; json: the same for machines; difffolded: "
    "'stack count_a count_b' lines for flamegraph.pl; svg: a differential flame graph "
    "shaped like B, red where a frame grew, blue where it shrank.",
)
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where to write ('-' for stdout). Default: stdout for table and json, "
    "B's name with .difffolded or .diff.svg otherwise.",
)
@click.option(
    "--lines", is_flag=True, help="Compare lines ('function (file:line)'), not functions."
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    metavar="N",
    help=f"Show the N most changed rows (0: all). Default: {DEFAULT_TABLE_ROWS} in the "
    "table, all in json.",
)
@click.option(
    "--sort",
    "by",
    type=click.Choice(list(BY)),
    default="self",
    show_default=True,
    help="Rank by the change in self share or in total (inclusive) share.",
)
@click.option(
    "--normalize/--no-normalize",
    default=True,
    help="difffolded: scale A's counts to B's total (default), so colours show changes "
    "in share rather than in recording length; --no-normalize writes raw counts.",
)
@full_filenames_option
@debug_dir_option
@max_output_option
@filter_options
def command(
    a: str,
    b: str,
    to: str,
    output: str | None,
    lines: bool,
    top: int | None,
    by: str,
    normalize: bool,
    full_filenames: bool,
    debug_dir: tuple[str, ...],
    native_lines: bool,
    max_output: int | None,
    filters: FilterOptions,
) -> None:
    """Compare two traces: what got slower (+, red), what got faster (-, blue).

    Shares are percentages of each side's selected samples, so recordings of different
    lengths compare. Frames match by function and file (not by address or line offset),
    so recordings of the same code on different Python versions or machines compare; a
    function on one side only shows as added or removed.
    """
    ext = FORMATS[to]
    out = output if output is not None else (STDOUT if ext is None else default_output_path(b, ext))
    refuse_inputs(out, [a, b])

    recs: list[api.Recording] = []
    errors: list[FlamekitError] = []
    for path in (a, b):
        try:
            recs.append(
                api.open(
                    path, full_filenames=full_filenames, debug_dirs=debug_dir,
                    native_lines=native_lines,
                )
            )  # fmt: skip
        except TraceError as exc:
            errors.append(exc)
    _raise_all(errors)
    for path, rec in zip((a, b), recs):
        warn_if_truncated(path, rec, "comparing")
    profiles: list[api.Profile] = []
    for rec in recs:
        try:
            profiles.append(rec.select(side_filters(rec.trace, filters)))
        except UsageError as exc:
            errors.append(exc)
    _raise_all(errors)
    if say_empty(profiles, to, out, max_output):
        return

    diff = build_diff(profiles[0].selection, profiles[1].selection, lines=lines)
    chunks: Iterable[bytes]
    if to in ("table", "json"):
        rows = diff.rows(by)
        limit = top if top is not None else (DEFAULT_TABLE_ROWS if to == "table" else 0)
        shown = rows[:limit] if limit else rows
        check(f"the diff {to}", estimate_rows(diff, shown, to == "json"), max_output)
        if to == "table":
            chunks = [render_table(diff, shown, by, len(rows)).encode("utf-8", "backslashreplace")]
        else:
            chunks = [render_json(diff, shown, by, len(rows))]
    elif to == "difffolded":
        check("the difffolded output", estimate_difffolded(diff), max_output)
        chunks = render_difffolded(diff, normalize=normalize)
    else:
        from flamekit.diffing.svg import estimate, render_svg

        check("the diff svg", estimate(diff, max_output), max_output)
        chunks = render_svg(diff)
    write_output(out, chunks, max_output=max_output)

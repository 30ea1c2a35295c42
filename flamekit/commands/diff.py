"""``flamekit diff A B``: what got slower and what got faster between two recordings.

Loads both traces, symbolizes each once, applies the shared filters to each side
(:mod:`flamekit.analysis.filters`), matches frames by function and file
(:mod:`flamekit.diffing.model`), and writes the table, JSON, differential folded stacks
or a differential SVG flame graph. The table (and JSON) goes to stdout unless ``-o`` says
otherwise; the folded stacks and SVG, which are files for other tools, default to B's
name with the format's extension.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

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
from flamekit.diffing.model import build_diff
from flamekit.diffing.outputs import render_difffolded, render_json, render_table
from flamekit.errors import FlamekitError, OutputError, TraceError, UsageError
from flamekit.output import STDOUT, default_output_path, write_output

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


def _load(path: str) -> fkt.Trace:
    trace = fkt.load(path)
    if not len(trace):
        raise TraceError(f"{path}: the trace holds no samples")
    return trace


def side_filters(trace: fkt.Trace, filters: FilterOptions) -> FilterOptions:
    """The filters for one side: ``--thread`` keeps the listed TIDs *this* trace has.

    Thread ids differ from run to run, so ``--thread 101 --thread 202`` can pick thread
    101 of A and thread 202 of B. A side with none of the TIDs keeps them all, so that
    :func:`flamekit.analysis.filters.select` reports it with the list of threads it does have.
    """
    if not filters.thread_ids:
        return filters
    have = {t.native_tid for t in trace.threads.values()}
    keep = tuple(t for t in filters.thread_ids if t in have)
    return replace(filters, thread_ids=keep) if keep else filters


def _select(trace: fkt.Trace, filters: FilterOptions) -> Selection:
    profile = build_profile(trace)
    sel = select(profile, side_filters(trace, filters))
    if not len(sel):
        raise UsageError(f"{trace.path}: {explain_empty(profile, filters)}")
    return sel


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
    type=click.Choice(["self", "total"]),
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
    if out != STDOUT and os.path.exists(out):
        for src in (a, b):
            if os.path.exists(src) and os.path.samefile(out, src):
                raise OutputError(f"cannot write {out}: it is an input trace")

    traces: list[fkt.Trace] = []
    errors: list[FlamekitError] = []
    for path in (a, b):
        try:
            traces.append(_load(path))
        except TraceError as exc:
            errors.append(exc)
    _raise_all(errors)
    for path, trace in zip((a, b), traces):
        if trace.truncated:
            click.echo(
                f"flamekit: warning: {path}: truncated trace, {trace.truncation}; "
                f"comparing the {len(trace):,} samples it holds",
                err=True,
            )
    sels: list[Selection] = []
    for trace in traces:
        try:
            sels.append(_select(trace, filters))
        except UsageError as exc:
            errors.append(exc)
    _raise_all(errors)

    diff = build_diff(sels[0], sels[1], lines=lines)
    chunks: Iterable[bytes]
    if to in ("table", "json"):
        rows = diff.rows(by)
        limit = top if top is not None else (DEFAULT_TABLE_ROWS if to == "table" else 0)
        shown = rows[:limit] if limit else rows
        if to == "table":
            chunks = [render_table(diff, shown, by, len(rows)).encode("utf-8", "backslashreplace")]
        else:
            chunks = [render_json(diff, shown, by, len(rows))]
    elif to == "difffolded":
        chunks = render_difffolded(diff, normalize=normalize)
    else:
        from flamekit.diffing.svg import render_svg

        chunks = render_svg(diff)
    write_output(out, chunks)

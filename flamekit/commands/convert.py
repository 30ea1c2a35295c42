"""``flamekit convert FILE --to FORMAT [-o OUT]``: a trace into what people open.

Loads the trace, symbolizes it once (:mod:`flamekit.analysis.profile`), selects samples with the
shared filters (:mod:`flamekit.analysis.filters`), and streams the chosen format's bytes to an
atomically replaced file or to stdout (:mod:`flamekit.output`).
"""

from __future__ import annotations

import os

import click

from flamekit import trace as fkt
from flamekit.analysis.filters import FilterOptions, explain_empty, filter_options, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.errors import OutputError, TraceError, UsageError
from flamekit.output import STDOUT, default_output_path, write_output


def _format_help() -> str:
    return "Output format: " + ", ".join(formats()) + "."


@click.command("convert")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--to", "to", required=True, metavar="FORMAT", help=_format_help())
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where to write ('-' for stdout). Default: FILE with the format's extension.",
)
@click.option(
    "--lines/--no-lines",
    default=True,
    help="Label frames 'function (file:line)' (default) or 'function (file)'.",
)
@filter_options
def command(file: str, to: str, output: str | None, lines: bool, filters: FilterOptions) -> None:
    """Symbolize a trace and write it as collapsed, speedscope, cpuprofile, svg or pprof."""
    fmt = get_format(to)
    out = output if output is not None else default_output_path(file, fmt.extension)
    if out != STDOUT and os.path.exists(out) and os.path.samefile(out, file):
        raise OutputError(f"cannot write {out}: it is the input trace")
    trace = fkt.load(file)
    if trace.truncated:
        click.echo(
            f"flamekit: warning: {file}: truncated trace, {trace.truncation}; "
            f"converting the {len(trace):,} samples it holds",
            err=True,
        )
    if not len(trace):
        raise TraceError(f"{file}: the trace holds no samples")
    profile = build_profile(trace)
    sel = select(profile, filters)
    if not len(sel):
        raise UsageError(explain_empty(profile, filters))
    write_output(out, fmt.convert(sel, ConvertOptions(lines=lines)))

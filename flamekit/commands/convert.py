"""``flamekit convert FILE --to FORMAT [-o OUT]``: a trace into what people open.

A face over :meth:`flamekit.api.Profile.write`: opens the trace and selects samples with
the shared filters (:mod:`flamekit.commands._common`), then streams the chosen format's
bytes to an atomically replaced file, a device or FIFO, or stdout (:mod:`flamekit.output`),
within the output budget (``--max-output``, :mod:`flamekit.analysis.budget`).
"""

from __future__ import annotations

import click

from flamekit.analysis.filters import FilterOptions
from flamekit.commands._common import (
    debug_dir_option,
    filter_options,
    full_filenames_option,
    max_output_option,
    open_profile,
)
from flamekit.convert.base import formats, get_format
from flamekit.output import default_output_path, refuse_inputs


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
@full_filenames_option
@debug_dir_option
@max_output_option
@filter_options
def command(
    file: str,
    to: str,
    output: str | None,
    lines: bool,
    full_filenames: bool,
    debug_dir: tuple[str, ...],
    native_lines: bool,
    max_output: int | None,
    filters: FilterOptions,
) -> None:
    """Symbolize a trace and write it as collapsed, speedscope, cpuprofile, svg or pprof.

    A trace with no samples (or filters that keep none) gives a valid empty file of the
    format and one warning line: it is a result, not bad input."""
    fmt = get_format(to)
    out = output if output is not None else default_output_path(file, fmt.extension)
    refuse_inputs(out, [file])
    prof = open_profile(file, filters, "converting", full_filenames, debug_dir, native_lines)
    prof.write(to, out, lines=lines, max_output=max_output)
    if prof.why_empty:  # a result, as py-spy writes an empty profile: each reader opens it
        click.echo(
            f"flamekit: warning: {file}: {prof.why_empty}; wrote an empty {fmt.name} output",
            err=True,
        )

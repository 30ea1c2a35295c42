"""What the offline commands share: the filter options, the truncation warning, and the
pipeline from a trace path to a profile.

Each offline command is a face over :mod:`flamekit.api`: it parses its options, opens
the trace and selects samples here, the way every other command does, then ranks,
converts or compares and prints. Spelling the options and the warning once is what keeps
``convert``, ``top`` and ``diff`` agreeing about what ``--idle`` or a cut-off file means.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from flamekit import api
from flamekit.analysis.budget import DEFAULT_MAX_OUTPUT, option_for, parse_size
from flamekit.analysis.filters import FilterOptions

F = TypeVar("F", bound=Callable[..., Any])


#: The --pid filter's help, for a command whose only use of a pid is the filter.
PID_FILTER_HELP = "Keep only this process of a process tree (repeatable)."


def filter_options_with(pid_decls: tuple[str, ...], pid_help: str) -> Callable[[F], F]:
    """:func:`filter_options` with its ``--pid`` spelled ``pid_decls`` and explained by
    ``pid_help``: ``top`` also takes ``-p PID`` for the process to watch live, and the
    filter and the live process are one option (a pid names a process either way)."""
    return functools.partial(_filter_options, pid_decls=pid_decls, pid_help=pid_help)


def filter_options(f: F) -> F:
    """Add the shared filter options to a click command; it receives ``filters=FilterOptions``.

    Used by ``convert``, ``top`` and ``diff`` so that the options are spelled, documented
    and validated once.
    """
    return _filter_options(f, ("--pid",), PID_FILTER_HELP)


def _filter_options(f: F, pid_decls: tuple[str, ...], pid_help: str) -> F:

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["filters"] = FilterOptions(
            threads=kwargs.pop("threads"),
            idle=kwargs.pop("idle"),
            gil=kwargs.pop("gil"),
            start_s=kwargs.pop("from_s"),
            until_s=kwargs.pop("until_s"),
            thread_ids=tuple(kwargs.pop("thread_ids")),
            pids=tuple(kwargs.pop("pids")),
            merge_processes=kwargs.pop("merge_processes"),
        )
        return f(*args, **kwargs)

    decorators = [
        click.option(
            "--threads/--no-threads",
            default=False,
            help="Separate stacks per thread, each rooted at a 'thread NAME (TID)' frame.",
        ),
        click.option("--idle", is_flag=True, help="Keep idle samples (dropped by default)."),
        click.option("--gil", is_flag=True, help="Keep only samples whose thread held the GIL."),
        click.option(
            "--from",
            "from_s",
            type=float,
            metavar="SECONDS",
            help="Start of the time window, in seconds from the start of the recording.",
        ),
        click.option(
            "--until",
            "until_s",
            type=float,
            metavar="SECONDS",
            help="End of the time window (exclusive), in seconds from the start.",
        ),
        click.option(
            "--thread",
            "thread_ids",
            type=click.IntRange(min=0),
            multiple=True,
            metavar="TID",
            help="Keep only this native thread id (repeatable).",
        ),
        click.option(
            *pid_decls,
            "pids",
            type=click.IntRange(min=0),
            multiple=True,
            metavar="PID",
            help=pid_help,
        ),
        click.option(
            "--merge-processes",
            is_flag=True,
            help="Fold a process tree's processes into one tree of stacks (by default each "
            "process is its own root, 'process PID: COMMAND LINE').",
        ),
    ]
    command: Callable[..., Any] = wrapper
    for deco in reversed(decorators):
        command = deco(command)
    return cast(F, command)


def max_output_option(f: F) -> F:
    """Add ``--max-output SIZE`` (the output budget) to a click command writing an output;
    it receives ``max_output`` (bytes, or None for no limit)."""
    return click.option(
        "--max-output",
        "max_output",
        default=option_for(DEFAULT_MAX_OUTPUT),
        show_default=True,
        metavar="SIZE",
        callback=lambda _ctx, _param, value: parse_size(value),
        help="The most bytes the output may have (500M, 2G, ...; 0: no limit). An output "
        "estimated above it is refused before anything is written.",
    )(f)


def warn_if_truncated(path: str, rec: api.Recording, doing: str | None = None) -> None:
    """One warning line on stderr if the trace is cut short: a truncated file is not an
    error (it holds what the recorder wrote), but its reader should know.

    ``doing`` says what the command does with the samples ("converting"); without it the
    line says how many were read (``info``).
    """
    if not rec.truncated:
        return
    n = f"{len(rec):,}"
    what = f"{doing} the {n} samples it holds" if doing else f"read {n} samples"
    click.echo(f"flamekit: warning: {path}: truncated trace, {rec.truncation}; {what}", err=True)


def debug_dir_option(f: F) -> F:
    """Add ``--debug-dir DIR`` (repeatable) and ``--native-lines`` to a command reading
    traces: where the ELF objects of a ``record --native`` trace are looked for first,
    and whether native frames get source lines from their DWARF. It receives
    ``debug_dir``, a tuple, and ``native_lines``."""
    f = click.option(
        "--native-lines",
        is_flag=True,
        help="--native traces: give native frames their source file and line from the "
        "objects' DWARF line tables, where they have them (slower: off by default).",
    )(f)
    return click.option(
        "--debug-dir",
        "debug_dir",
        multiple=True,
        type=click.Path(file_okay=False, path_type=str),
        help="--native traces: look for the recorded ELF objects here first (by build id, "
        "DIR/.build-id/xx/rest.debug, then by file name); repeatable.",
    )(f)


def full_filenames_option(f: F) -> F:
    """Add ``--full-filenames`` to a click command showing frames; it receives
    ``full_filenames``. Used by ``convert``, ``top``, ``diff`` and ``dump``."""
    return click.option(
        "--full-filenames",
        is_flag=True,
        help="Show file names whole, not relative to the import root (site-packages, the "
        "standard library, the script's directory) they were loaded from.",
    )(f)


def open_profile(
    path: str,
    filters: FilterOptions,
    doing: str,
    full_filenames: bool = False,
    debug_dirs: tuple[str, ...] = (),
    native_lines: bool = False,
) -> api.Profile:
    """Open a trace, warn if it is cut short, and select samples: the start of every
    command that works on one profile. Raises what :meth:`api.Recording.select` raises."""
    rec = api.open(
        path, full_filenames=full_filenames, debug_dirs=debug_dirs, native_lines=native_lines
    )
    warn_if_truncated(path, rec, doing)
    return rec.select(filters)

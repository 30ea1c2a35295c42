"""``flamekit top FILE``: the functions with the most samples, like ``py-spy top`` offline;
``flamekit top -p PID`` / ``top -- CMD``: the same live (:mod:`flamekit.commands.top_live`).

A face over :meth:`flamekit.api.Profile.rank` (:mod:`flamekit.analysis.ranking`): *self*
samples are those where the function is the innermost frame (it was running), *total*
samples those where it is anywhere on the stack (it or its callees were running),
counted once per sample even under recursion.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from flamekit.analysis.escape import printable
from flamekit.analysis.filters import FilterOptions
from flamekit.analysis.live import LIVE_BY, View, check_live_by
from flamekit.analysis.ranking import check_by
from flamekit.api import Profile, Ranked
from flamekit.commands._common import (
    debug_dir_option,
    filter_options_with,
    full_filenames_option,
    open_profile,
)
from flamekit.commands.record import nonblocking_option, parse_positive, rate_option, summary
from flamekit.errors import UsageError

if TYPE_CHECKING:  # the recorder is loaded for a live top only: not for `top FILE`
    from flamekit.record.session import SessionResult


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


#: Where the command to launch, after ``--``, is kept for the command's body.
LAUNCH = "flamekit.top.launch"
#: Help of ``-p/--pid``: a filter on a trace, the process to watch without one.
PID_HELP = (
    "Without FILE: the process to watch live. With FILE: keep only this process of a "
    "process tree (repeatable)."
)


class TopCommand(click.Command):
    """``top``, whose arguments after ``--`` are a command to launch and watch: click
    alone would take the first of them for FILE."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[LAUNCH] = tuple(args[at + 1 :])
            args = args[:at]
        return super().parse_args(ctx, args)


@click.command("top", cls=TopCommand)
@click.argument("file", required=False, type=click.Path(dir_okay=True, path_type=str))
@click.option("--lines", is_flag=True, help="Rank lines ('function (file:line)'), not functions.")
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many rows to show (0: all). Live on a terminal: as many as fit.",
)
@click.option(
    "--sort",
    "by",
    type=click.Choice(list(LIVE_BY)),
    default="self",
    show_default=True,
    help="Rank by self samples or by total samples (live: or by name).",
)
@full_filenames_option
@debug_dir_option
@filter_options_with(("-p", "--pid"), PID_HELP)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Live: also keep every sample shown in this trace file.",
)
@rate_option("Live: samples per second.")
@nonblocking_option("Live: read")
@click.option(
    "--subprocesses",
    is_flag=True,
    help="Live: also watch every descendant that runs CPython.",
)
@click.option("--once", is_flag=True, help="Live: print one table after one interval, then exit.")
@click.option(
    "--interval",
    metavar="SECONDS",
    default="1",
    show_default=True,
    callback=parse_positive,
    help="Live: seconds between refreshes.",
)
@click.pass_context
def command(
    ctx: click.Context,
    file: str | None,
    lines: bool,
    limit: int,
    by: str,
    full_filenames: bool,
    debug_dir: tuple[str, ...],
    native_lines: bool,
    filters: FilterOptions,
    output: str | None,
    rate: float,
    nonblocking: bool,
    subprocesses: bool,
    once: bool,
    interval: float,
) -> None:
    """Show the functions with the most samples: in a trace FILE, or live.

    Live, full screen, refreshed every second: attach with -p PID, or launch a command
    after --. Keys: o/t/n sort by own, total or name; i idle samples; g the GIL holder
    only; p per thread; l lines; space pause; q quit (the target runs on).

        flamekit top run.fkt

        flamekit top -p 1234 -o run.fkt

        flamekit top -- python script.py ARGS...
    """
    launch: tuple[str, ...] = ctx.meta.get(LAUNCH, ())
    if launch or (file is None and filters.pids):
        if file is not None:
            raise UsageError("give a trace FILE or a live process (-p PID, -- COMMAND), not both")
        view = View(check_live_by(by), filters.idle, filters.gil, filters.threads, lines)
        pid = _live_pid(filters, launch)
        _live(
            pid, launch, view, rate, nonblocking, subprocesses, output, limit, once, interval,
            full_filenames,
        )  # fmt: skip
        return
    if output is not None or once:
        raise UsageError(f"{'-o' if output else '--once'}: only for a live top (-p PID, -- CMD)")
    if file is None:
        raise UsageError("give a trace FILE, -p PID to watch a process, or -- COMMAND")
    by_offline = check_by(by)
    prof = open_profile(file, filters, "ranking", full_filenames, debug_dir, native_lines)
    if prof.why_empty:  # a result: "no samples" is the answer, not an error
        click.echo(printable(f"{file}: {prof.why_empty}"))
        return
    rows = prof.rank(by_offline, lines=lines)
    click.echo(render(prof, rows[:limit] if limit else rows))


#: Filters that select a part of a finished recording: a live view has no such choice.
_TRACE_ONLY = {
    "--from": lambda f: f.start_s is not None,
    "--until": lambda f: f.until_s is not None,
    "--thread": lambda f: bool(f.thread_ids),
    "--merge-processes": lambda f: f.merge_processes,
}


def _live_pid(filters: FilterOptions, launch: tuple[str, ...]) -> int | None:
    """The process ``-p`` names to watch (None: the command after ``--``)."""
    bad = [name for name, given in _TRACE_ONLY.items() if given(filters)]
    if bad:
        raise UsageError(f"{', '.join(bad)}: only for a trace FILE, not a live top")
    if not filters.pids:
        return None
    if launch:
        raise UsageError("give either -p PID to attach or a command after --, not both")
    if len(filters.pids) > 1 or filters.pids[0] <= 0:
        raise UsageError("-p: one process id (a positive whole number) to watch live")
    return filters.pids[0]


def _live(
    pid: int | None,
    launch: tuple[str, ...],
    view: View,
    rate: float,
    nonblocking: bool,
    subprocesses: bool,
    output: str | None,
    limit: int,
    once: bool,
    interval: float,
    full_filenames: bool = False,
) -> None:
    """Watch ``pid`` (or the command ``launch``) until ``q``, Ctrl-C, SIGHUP, ``--once``'s
    one interval or the target's end; the recording goes to ``output`` or to nowhere."""
    from flamekit.analysis.live import LiveProfile
    from flamekit.commands.top_live import Screen, face_for
    from flamekit.record.session import RecordOptions, record

    options = RecordOptions(
        rate_hz=rate, pausing=not nonblocking, gil_only=view.gil, subprocesses=subprocesses
    )
    model = LiveProfile(full_filenames=full_filenames)
    face = face_for(model, view, interval, limit or None, once, launched=bool(launch))
    warnings: list[str] = []
    on_warning = warnings.append if isinstance(face, Screen) else _warn
    with face.opened():
        result = record(
            pid=pid,
            command=launch,
            output=output if output is not None else os.devnull,
            options=options,
            on_progress=face.on_progress,
            on_warning=on_warning,
            exiting=True,
            observer=model,
        )
    if not face.shown and not face.broken and not isinstance(face, Screen):
        # ended before a whole interval (the target exited): what there was
        model.roll()
        with contextlib.suppress(OSError):
            face.refresh()
    if face.broken or result.error == "SIGHUP":
        return  # nobody left to tell
    try:
        for line in warnings:
            _warn(line)
        _closing(result, output, subprocesses)
    except OSError:
        return


def _warn(line: str) -> None:
    click.echo(printable(f"flamekit: warning: {line}"), err=True)


def _closing(result: SessionResult, output: str | None, subprocesses: bool) -> None:
    """After the screen: the trace kept (``-o``), the target's end, or the error."""
    if output is not None:
        click.echo(summary(result, subprocesses), err=True)
    elif result.reason == "target-exited":
        click.echo("flamekit: the target exited", err=True)
    if result.reason == "error":
        if output is None:
            click.echo(f"flamekit: error: {result.error}", err=True)
        raise SystemExit(1)

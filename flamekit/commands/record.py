"""``flamekit record``: sample a running or launched Python process into an FKT trace."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flamekit.errors import OutputError, UsageError
from flamekit.trace.records import MIN_RATE_HZ

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # the recorder is loaded when a recording starts, not for --help
    from flamekit.record.session import SessionResult


def parse_positive(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A positive, finite number; bad values are one UsageError line, not click's usage
    block (the option is typed str so that click does not convert it first)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--{param.name} {value}: not a number") from None
    if not math.isfinite(number) or number <= 0:
        unit = "samples per second" if param.name == "rate" else "seconds"
        raise UsageError(f"--{param.name} {value}: must be a positive number of {unit}")
    return number


def parse_rate(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A rate the trace format holds (formats/fkt.md: at least MIN_RATE_HZ, one sample in
    11.6 days), or one UsageError line: a reader refuses a header with a lower one
    (shared with ``top -p``)."""
    rate = parse_positive(ctx, param, value)
    if rate is None or rate < MIN_RATE_HZ:
        raise UsageError(f"--rate {value}: must be at least {MIN_RATE_HZ:g} samples per second")
    return rate


def _non_negative(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A finite number >= 0, or one UsageError line."""
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--{param.name.replace('_', '-')} {value}: not a number") from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"--{param.name.replace('_', '-')} {value}: must be 0 or more")
    return number


def parse_pid(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """-p PID as a positive int, or one UsageError line (shared with ``dump``)."""
    if value is None:
        return None
    try:
        pid = int(value)
    except ValueError:
        pid = 0
    if pid <= 0:
        raise UsageError(f"--pid {value}: a process id is a positive whole number")
    return pid


def rate_option(text: str) -> Callable[[F], F]:
    """``-r/--rate HZ`` as the recorder takes it (shared with ``top -p``)."""
    return click.option(
        "-r",
        "--rate",
        metavar="HZ",
        default="100",
        show_default=True,
        callback=parse_rate,
        help=text,
    )


def nonblocking_option(verb: str) -> Callable[[F], F]:
    """``--nonblocking`` (shared with ``top -p``)."""
    return click.option(
        "--nonblocking",
        is_flag=True,
        help=f"{verb} without pausing the target (less overhead, stacks may be torn).",
    )


def native_option(verb: str) -> Callable[[F], F]:
    """``--native`` (shared with ``dump``)."""
    return click.option(
        "--native",
        is_flag=True,
        help=f"{verb} each thread's native (C) stack, unwound while it is paused "
        "(x86-64; not with --nonblocking).",
    )


@click.command("record", context_settings={"ignore_unknown_options": False})
@click.option(
    "-p", "--pid", metavar="PID", callback=parse_pid, help="Attach to this running process."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Trace file to write (default: flamekit-<name>-<pid>-<time>.fkt).",
)
@click.option(
    "-d",
    "--duration",
    metavar="SECONDS",
    callback=parse_positive,
    help="Stop after this many seconds (default: until the target exits or Ctrl-C).",
)
@rate_option("Samples per second.")
@nonblocking_option("Read")
@click.option("--gil", "gil_only", is_flag=True, help="Record only the thread holding the GIL.")
@click.option(
    "--max-pause",
    "max_pause",
    metavar="MS",
    default="5",
    show_default=True,
    callback=_non_negative,
    help="Longest a sample may hold the target, in milliseconds; past it the target runs "
    "on while the sample's read ends (0: no bound). Pausing mode only.",
)
@click.option(
    "--subprocesses",
    is_flag=True,
    help="Also record every descendant that runs CPython (workers, pools, children "
    "started later); other descendants are watched for theirs.",
)
@native_option("Also record")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(
    pid: int | None,
    output: str | None,
    duration: float | None,
    rate: float,
    nonblocking: bool,
    gil_only: bool,
    max_pause: float,
    subprocesses: bool,
    native: bool,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Sample a Python process from outside and write an FKT trace.

    Attach with -p PID, or launch a command after --:

        flamekit record -p 1234 -o run.fkt

        flamekit record -o run.fkt -- python script.py ARGS...
    """
    from flamekit.commands.progress import Progress
    from flamekit.record.session import RecordOptions, record

    options = RecordOptions(
        rate_hz=rate,
        duration_s=duration,
        pausing=not nonblocking,
        gil_only=gil_only,
        max_pause_s=max_pause / 1e3 or None,
        subprocesses=subprocesses,
        native=native,
    )
    progress = Progress(quiet=quiet)
    try:
        result = record(
            pid=pid,
            command=command,
            output=output,
            options=options,
            on_progress=None if quiet else progress.update,
            on_warning=lambda line: progress.note(f"flamekit: warning: {line}"),
            exiting=True,
        )
    finally:
        progress.finish()
    click.echo(summary(result, subprocesses), err=True)
    if result.child_status is not None and result.child_status != 0:
        click.echo(f"flamekit: the command exited with status {result.child_status}", err=True)
    if result.reason == "error":
        raise SystemExit(1)
    if not result.size_bytes:
        raise OutputError(f"{result.path}: nothing was written")


def summary(result: SessionResult, subprocesses: bool) -> str:
    """The closing line of a recording (shared with ``top -o``)."""
    how = {
        "duration": "duration reached",
        "target-exited": "target exited",
        "interrupted": f"interrupted by {result.error}" if result.error else "interrupted",
        "error": f"error: {result.error}",
    }[result.reason]
    return (
        f"flamekit: wrote {result.path}: {result.samples:,} samples in "
        f"{result.duration_s:.2f} s ({result.effective_hz:,.1f} Hz effective, "
        f"{result.errors:,} sampling errors; {how})"
        + (f"; {result.processes} Python processes" if subprocesses else "")
        + ("; the launched command was stopped" if result.child_stopped else "")
    )

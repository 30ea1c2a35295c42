"""``flamekit record``: sample a running or launched Python process into an FKT trace."""

from __future__ import annotations

import math
import os
import subprocess

import click

from flamekit.errors import OutputError, UsageError
from flamekit.output import file_mode


def _positive(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
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


def _has_header(path: str) -> bool:
    """Whether a trace cut short still begins with a whole header (readers can use it)."""
    from flamekit.errors import TraceError
    from flamekit.trace import TraceReader

    try:
        next(iter(TraceReader(path)))
    except (TraceError, OSError, StopIteration):
        return False
    return True


#: Seconds a launched command gets to end after SIGTERM before it is killed.
STOP_GRACE_S = 2.0


def _stop(child) -> bool:
    """End a command we launched that would otherwise run on unrecorded, orphaned once
    we exit (as py-spy does after ``record -d``): SIGTERM, then SIGKILL if it is still
    there after a grace period. True if it was still running."""
    if child is None or child.poll() is not None:
        return False
    child.terminate()
    try:
        child.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return True


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
    callback=_positive,
    help="Stop after this many seconds (default: until the target exits or Ctrl-C).",
)
@click.option(
    "-r",
    "--rate",
    metavar="HZ",
    default="100",
    show_default=True,
    callback=_positive,
    help="Samples per second.",
)
@click.option(
    "--nonblocking",
    is_flag=True,
    help="Read without pausing the target (less overhead, stacks may be torn).",
)
@click.option("--gil", "gil_only", is_flag=True, help="Record only the thread holding the GIL.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(
    pid: int | None,
    output: str | None,
    duration: float | None,
    rate: float,
    nonblocking: bool,
    gil_only: bool,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Sample a Python process from outside and write an FKT trace.

    Attach with -p PID, or launch a command after --:

        flamekit record -p 1234 -o run.fkt

        flamekit record -o run.fkt -- python script.py ARGS...
    """
    from flamekit.record.proc import launcher
    from flamekit.record.sampler import Recorder, RecordOptions, attach

    if (pid is None) == (not command):
        raise UsageError(
            "give either -p PID to attach or a command after -- to launch, not both"
            if pid is not None
            else "nothing to record: give -p PID or a command after --"
        )
    if rate > 100_000:
        raise UsageError(f"--rate {rate:g}: at most 100000 samples per second")
    options = RecordOptions(
        rate_hz=rate, duration_s=duration, pausing=not nonblocking, gil_only=gil_only, quiet=quiet
    )
    child = launcher.launch(list(command)) if command else None
    target_pid = child.pid if child is not None else pid
    assert target_pid is not None
    try:
        target = attach(target_pid, launched=child)
    except BaseException:
        _stop(child)
        raise
    path = output or launcher.default_output(target_pid)
    try:
        out = open(path, "wb")
    except OSError as exc:
        target.close()
        _stop(child)  # it would run on unrecorded, orphaned once we exit
        raise OutputError(f"{path}: cannot write the trace: {exc.strerror or exc}") from None
    try:
        os.fchmod(out.fileno(), file_mode())
    except OSError:
        pass  # an existing file of another owner that we may write but not chmod: its mode stays
    try:
        with out:
            result = Recorder(target, out, options, launched=child).run()
    except OSError as exc:
        if _has_header(path):
            note = "what was written so far is readable as a truncated trace"
        else:  # not even the header fits: no file that looks like a recording is left
            note = "nothing usable was written; the file was removed"
            try:
                os.unlink(path)
            except OSError:
                pass
        raise OutputError(
            f"{path}: cannot write the trace: {exc.strerror or exc} ({note})"
        ) from None
    finally:
        target.close()
        stopped = _stop(child)
    how = {
        "duration": "duration reached",
        "target-exited": "target exited",
        "interrupted": "interrupted",
        "error": f"error: {result.error}",
    }[result.reason]
    rate_eff = result.sampled / result.duration_s if result.duration_s > 0 else 0.0
    click.echo(
        f"flamekit: wrote {path}: {result.samples:,} samples in {result.duration_s:.2f} s "
        f"({rate_eff:,.1f} Hz effective, {result.errors:,} sampling errors; {how})"
        + ("; the launched command was stopped" if stopped else ""),
        err=True,
    )
    if result.child_status is not None and result.child_status != 0:
        click.echo(f"flamekit: the command exited with status {result.child_status}", err=True)
    if result.reason == "error":
        raise SystemExit(1)
    if not os.path.getsize(path):
        raise OutputError(f"{path}: nothing was written")

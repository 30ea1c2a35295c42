"""A recording session: attach to a process or launch a command, record it into one trace
file, and leave everything as it was found.

This is what ``flamekit record`` does, callable from Python: the command only parses
options, prints the progress line and the closing summary, and picks the exit status.
The session owns the duties that surround the sampling loop (:mod:`flamekit.record.sampler`):
a launched command is stopped when the recording ends before it does, since it would run
on unrecorded and orphaned; a target we attached to is released and never stopped; a
trace that could not get even its header is removed, so nothing that looks like a
recording is left behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flamekit.errors import OutputError, TargetError, TraceError, UsageError
from flamekit.output import file_mode
from flamekit.record.proc import launcher
from flamekit.record.sampler import ProgressCallback, Recorder, RecordOptions
from flamekit.record.target import PythonTarget, open_target

__all__ = ["MAX_RATE_HZ", "RecordOptions", "SessionResult", "attach", "record"]

#: The highest sampling rate accepted: above it the period is shorter than one walk.
MAX_RATE_HZ = 100_000
#: Seconds a launched command gets to end after SIGTERM before it is killed.
STOP_GRACE_S = 2.0
#: How long a launched command may take to become CPython (a wrapper script, pyenv's
#: shims and the like exec the interpreter).
LAUNCH_WAIT_S = 10.0


@dataclass(frozen=True)
class SessionResult:
    """How a recording went: what the closing summary line reports."""

    path: str  #: the trace written
    reason: str  #: "duration", "target-exited", "interrupted" or "error"
    samples: int
    #: ticks that recorded at least one stack: the effective rate's ticks, as ``info``
    #: counts them from the trace
    sampled_ticks: int
    errors: int  #: sampling errors (stacks that could not be read whole)
    duration_s: float
    error: str | None = None  #: why the recording ended, for reason "error"
    child_status: int | None = None  #: a launched command's exit code, once it exited
    child_stopped: bool = False  #: a launched command was still running and was stopped
    size_bytes: int = 0  #: the trace's size when it was closed

    @property
    def effective_hz(self) -> float:
        return self.sampled_ticks / self.duration_s if self.duration_s > 0 else 0.0


def attach(
    pid: int, launched: subprocess.Popen[bytes] | None = None, wait_s: float = LAUNCH_WAIT_S
) -> PythonTarget:
    """Open ``pid`` as a CPython target.

    A launched command may start as a wrapper (a shell script, pyenv's shims) that execs
    the interpreter, so for a launched child we retry until it is Python, it exits, or
    ``wait_s`` passes.
    """
    if launched is None:
        launcher.check_exists(pid)
        return open_target(pid)
    deadline = time.monotonic() + wait_s
    delay = 0.002
    while True:
        try:
            return open_target(pid)
        except TargetError:
            if launched.poll() is not None:
                raise TargetError(
                    f"{' '.join(launcher.cmdline(pid)) or 'the command'} exited (status "
                    f"{launched.returncode}) before flamekit could attach to it"
                ) from None
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def record(
    *,
    pid: int | None = None,
    command: Sequence[str] = (),
    output: str | None = None,
    options: RecordOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> SessionResult:
    """Record the process ``pid``, or the ``command`` launched here, into ``output``.

    ``output`` defaults to ``flamekit-<name>-<pid>-<time>.fkt`` in the current directory.
    ``on_progress`` is called after every tick with the running figures (see
    :data:`~flamekit.record.sampler.ProgressCallback`; it runs in the sampling loop, so
    keep it cheap: ``flamekit record`` rate-limits its progress line itself).

    Raises UsageError for bad arguments, TargetError when the process cannot be recorded
    and OutputError when the trace cannot be written; a recording that starts always
    ends in a complete trace (its end record says why it ended), whatever ends it.
    """
    opts = options if options is not None else RecordOptions()
    if (pid is None) == (not command):
        raise UsageError(
            "give either -p PID to attach or a command after -- to launch, not both"
            if pid is not None
            else "nothing to record: give -p PID or a command after --"
        )
    if not 0 < opts.rate_hz <= MAX_RATE_HZ:
        raise UsageError(f"--rate {opts.rate_hz:g}: at most {MAX_RATE_HZ} samples per second")
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
        out = open(path, "wb")  # noqa: SIM115 - closed below, after the recording
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
            result = Recorder(target, out, opts, launched=child, on_progress=on_progress).run()
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot write the trace: {exc.strerror or exc} ({_salvage(path)})"
        ) from None
    finally:
        target.close()
        stopped = _stop(child)
    return SessionResult(
        path=path,
        reason=result.reason,
        samples=result.samples,
        sampled_ticks=result.sampled,
        errors=result.errors,
        duration_s=result.duration_s,
        error=result.error,
        child_status=result.child_status,
        child_stopped=stopped,
        size_bytes=os.path.getsize(path),
    )


def _salvage(path: str) -> str:
    """What is left of a trace whose writing failed, for the error line: a trace cut
    short that still begins with a whole header is readable as truncated; anything less
    is removed, so no file that looks like a recording is left."""
    if _has_header(path):
        return "what was written so far is readable as a truncated trace"
    try:
        os.unlink(path)
    except OSError:
        pass
    return "nothing usable was written; the file was removed"


def _has_header(path: str) -> bool:
    from flamekit.trace import TraceReader

    try:
        next(iter(TraceReader(path)))
    except (TraceError, OSError, StopIteration):
        return False
    return True


def _stop(child: subprocess.Popen[bytes] | None) -> bool:
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

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

from flamekit.errors import OutputError, TargetError, UsageError
from flamekit.output import STREAM, NewOutput
from flamekit.record.layout import Unsupported
from flamekit.record.proc import launcher
from flamekit.record.proc.registers import check_machine
from flamekit.record.sampler import ProgressCallback, Recorder, RecordOptions, WarningCallback
from flamekit.record.target import PythonTarget, open_target
from flamekit.stop_signals import StopSignals
from flamekit.trace.writer import TraceObserver

__all__ = ["MAX_RATE_HZ", "RecordOptions", "SessionResult", "attach", "record"]

#: The highest sampling rate accepted: above it the period is shorter than one walk.
MAX_RATE_HZ = 100_000
#: Traces are created readable by their owner only: recorded as root, a trace holds
#: another user's code paths, function and thread names.
TRACE_MODE = 0o600
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
    processes: int = 1  #: Python processes recorded (more with ``subprocesses``)

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
        except Unsupported:
            raise  # a Python flamekit has no layout for: waiting will not change it
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
    on_warning: WarningCallback | None = None,
    exiting: bool = False,
    observer: TraceObserver | None = None,
) -> SessionResult:
    """Record the process ``pid``, or the ``command`` launched here, into ``output``.

    ``output`` defaults to ``flamekit-<name>-<pid>-<time>.fkt`` in the current directory.
    ``on_progress`` is called after every tick with the running figures (see
    :data:`~flamekit.record.sampler.ProgressCallback`; it runs in the sampling loop, so
    keep it cheap: ``flamekit record`` rate-limits its progress line itself); a true
    return ends the recording, as an interruption.
    ``on_warning`` gets one line for each process of a tree that cannot be followed
    as asked (not ours to read, or to pause). ``exiting``: the caller exits once this
    returns (the command line), so the stop signals stay blocked: one more Ctrl-C then is
    not an interruption of anything. ``observer`` sees every record and sample as the
    trace gets them (``flamekit top -p``'s live view: one recording, shown and kept).

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
    if opts.native:
        check_native(opts.pausing)
    stop = StopSignals(suspend=opts.pausing)
    stop.interrupt_now()  # until the trace exists, a stop signal just ends the session
    child = target = out = None
    try:
        if command:
            with stop.held() as mask:  # a signal now would orphan a command half-started
                child = launcher.launch(list(command), sigmask=mask)
        target_pid = child.pid if child is not None else pid
        assert target_pid is not None
        target = attach(target_pid, launched=child)
        path = output or launcher.default_output(target_pid)
        # From here on a stop signal ends the recording with a complete trace: it waits,
        # blocked, for the sampling loop to see it (see stop_signals).
        stop.hold()  # (raises Interrupted for a signal whose exception a __del__ swallowed)
        out = NewOutput(path, TRACE_MODE)
        try:
            recorder = Recorder(
                target,
                out.file,
                opts,
                launched=child,
                on_progress=on_progress,
                on_warning=on_warning,
                observer=observer,
            )
            out.publish()  # the header is at the path before anything can go wrong
            result = recorder.run(stop)
        except OSError as exc:
            note = _salvage(out)
            raise OutputError(
                f"{path}: cannot write the trace: {exc.strerror or exc}{note}"
            ) from None
        finally:
            out.close()
    finally:
        _block(stop)  # no second signal in the middle of what follows
        if target is not None:
            target.close()
        stopped = _stop(child)
        stop.release(unblock=not exiting)
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
        size_bytes=_size(out),
        processes=result.processes,
    )


def check_native(pausing: bool) -> None:
    """``--native`` needs a stopped target: a running thread's registers and stack cannot
    be read consistently (UsageError); and an x86-64 machine (TargetError)."""
    if not pausing:
        raise UsageError(
            "--native cannot be used with --nonblocking: a running thread's registers and "
            "stack cannot be read consistently"
        )
    check_machine()


def _block(stop: StopSignals) -> None:
    try:
        stop.hold()
    except KeyboardInterrupt:
        pass  # already on the way out


def _size(out: NewOutput) -> int:
    """The trace's size; a stream (a pipe, /dev/null) has none to tell: -1."""
    if out.kind != STREAM:
        try:
            return os.path.getsize(out.target)
        except OSError:
            return 0
    return -1


def _salvage(out: NewOutput) -> str:
    """What is left of a trace whose writing failed, for the error line."""
    if out.kind == STREAM:
        return ""  # what went into a pipe or a device is the reader's
    if out.published:  # its header reached the file before it was put there
        return " (what was written so far is readable as a truncated trace)"
    return " (nothing usable was written; the file was removed)"


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

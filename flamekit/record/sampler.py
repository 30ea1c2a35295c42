"""The sampling loop: on a drift-free schedule, sample every process followed, write what
each tick finds, and keep the processes as they would be without us.

One recording follows one process, or with ``subprocesses`` the tree below it
(:mod:`flamekit.record.proc.tree`): each process is a :class:`Member`, Python or only
watched (a shell between two Pythons), and each CPython program it runs is sampled by a
:class:`~flamekit.record.run_sampler.RunSampler`. Between ticks the loop services each
paused process (signals passed on, job control kept, new threads followed), follows
execs, notices exits, and looks for new processes.

The loop is the only part with side effects on the targets; everything it learns goes
into the trace writer.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from flamekit import __version__
from flamekit.errors import FlamekitError, TargetError
from flamekit.record.pause_bound import DEFAULT_S as DEFAULT_PAUSE_S
from flamekit.record.pause_bound import PauseBound
from flamekit.record.proc import launcher
from flamekit.record.proc.handle import ProcessHandle
from flamekit.record.proc.memory import ProcessGoneError
from flamekit.record.proc.pause import Events, Pauser
from flamekit.record.proc.tree import POLL_S, ProcessTree
from flamekit.record.run_sampler import RunSampler, Shared
from flamekit.record.schedule import Schedule
from flamekit.record.target import PythonTarget, open_target
from flamekit.stop_signals import StopSignals
from flamekit.trace import records as R
from flamekit.trace.writer import ObservedWriter, TraceObserver, TraceWriter

_SI_USER = 0  # siginfo si_code: sent by kill() from a process (not the terminal)
_SI_QUEUE = -1
#: After an exec, how long the new program may take to become an openable CPython
#: (its loader maps libpython only once it runs) before it counts as another program.
EXEC_WAIT_S = 1.0

#: Waits this long or longer are followed by a Ctrl-C / SIGTERM check (shorter ones by the
#: check every tick makes anyway).
_LONG_WAIT_S = 0.01
#: Nonblocking mode, and watched processes: how often to check that a process is still
#: there and runs the same program.
_EXIT_CHECK_S = 0.01


@dataclass
class RecordOptions:
    """What ``flamekit record`` was asked for."""

    rate_hz: float = 100.0
    duration_s: float | None = None
    pausing: bool = True
    gil_only: bool = False
    #: pausing mode: the longest a sample may hold the target (None: no bound)
    max_pause_s: float | None = DEFAULT_PAUSE_S
    #: follow every descendant that runs CPython (record --subprocesses)
    subprocesses: bool = False
    #: also unwind each thread's native stack (record --native; pausing mode only)
    native: bool = False


#: Called after every tick with (seconds since the start, samples written, ticks that
#: recorded a stack, sampling errors): the figures of a progress line. A true return ends
#: the recording as an interruption does (a live view's ``q``): no signal to send ourselves.
ProgressCallback = Callable[[float, int, int, int], "bool | None"]
#: Called with one line about a process that cannot be followed as asked.
WarningCallback = Callable[[str], None]


@dataclass
class RecordResult:
    """How a recording went, for the closing summary line."""

    reason: str
    samples: int
    errors: int
    ticks: int
    missed: int
    duration_s: float
    child_status: int | None = None
    error: str | None = None
    #: ticks that recorded at least one stack: the effective rate's ticks, as `info`
    #: counts them from the trace (a tick whose every stack failed to read is not one)
    sampled: int = 0
    processes: int = 1  #: Python processes recorded


class Member:
    """One process of the recording, from when it is first seen until it ends: its pauser
    (pausing mode, a Python process), the program it runs now, sampled by ``run``, or
    None while it runs none we read (watched only, or waiting for an exec'd program to
    become a Python we can open)."""

    def __init__(self, pid: int, handle: ProcessHandle, ppid: int) -> None:
        self.pid = pid
        self.handle = handle
        self.ppid = ppid
        self.run: RunSampler | None = None
        self.pauser: Pauser | None = None
        self.python = False  #: its current program is one we record
        self.named = False  #: its current program has a PROCESS record and no PROCESS_END
        self.exec_deadline: float | None = None  #: set while following an exec
        self.exec_ident = launcher.exec_identity(pid)  #: how its program looked last
        self.gone = False
        self.counted = False  #: counted in Recorder.recorded (once, whatever it execs)
        #: adopted before it could be opened: its PROCESS record (command line, first
        #: seen, start) waits until it opens as Python, execs, ends, or EXEC_WAIT_S passes
        self.pending: tuple[tuple[str, ...], int, int | None] | None = None

    def alive(self) -> bool:
        return self.handle.alive()


class Recorder:
    """Records one target (and with ``subprocesses`` its descendants) into one trace
    writer. Call :meth:`run` once."""

    def __init__(
        self,
        target: PythonTarget,
        out,
        options: RecordOptions,
        launched: subprocess.Popen[bytes] | None = None,
        on_progress: ProgressCallback | None = None,
        on_warning: WarningCallback | None = None,
        observer: TraceObserver | None = None,
    ) -> None:
        """``observer``: sees every record and sample the trace gets (a live view)."""
        self.target = target
        self.on_progress = on_progress
        self.on_warning = on_warning
        self.pid = target.pid
        self.options = options
        self.launched = launched
        self.start_ns = time.monotonic_ns()
        host, kernel = launcher.host_facts()
        header = R.Header(
            flamekit_version=__version__,
            start_wall_ns=time.time_ns(),
            start_monotonic_ns=self.start_ns,
            rate_hz=float(options.rate_hz),
            pid=self.pid,
            cmdline=launcher.cmdline(self.pid),
            python_version=target.version_string,
            hostname=host,
            kernel=kernel,
            mode={
                "pausing": options.pausing,
                "gil_only": options.gil_only,
                "launched": launched is not None,
                "subprocesses": options.subprocesses,
                **({"native": True} if options.native else {}),
            },
        )
        self.writer = (
            TraceWriter(out, header) if observer is None else ObservedWriter(out, header, observer)
        )
        #: pausing mode: what lets go of a target a walk holds too long
        self.bound = (
            PauseBound(options.max_pause_s) if options.pausing and options.max_pause_s else None
        )
        self.shared = Shared(
            self.writer,
            self.start_ns,
            options.gil_only,
            options.pausing,
            itertools.count(1).__next__,
            itertools.count(0).__next__,
            self.bound,
            options.native,
        )
        #: every process followed, by pid (those that ended are dropped)
        self.members: dict[int, Member] = {}
        root = Member(self.pid, ProcessHandle(self.pid), launcher.ppid(self.pid))
        self.members[self.pid] = root
        self._begin(root, target)
        root.counted = True
        self.root = root
        self.tree = ProcessTree(self.pid) if options.subprocesses else None
        self.recorded = 1  #: Python processes recorded so far
        self.errors = 0  #: sampling errors of runs that ended (see all_errors)
        self.ticks = 0
        self.sampled_ticks = 0  #: ticks that wrote at least one sample
        self._next_check = 0.0  #: monotonic time of the next exit/exec check
        self._next_poll = 0.0  #: monotonic time of the next look for new processes
        #: nonblocking: the wait before this tick already looked for Ctrl-C / SIGTERM
        self._signals_seen = False
        #: the session's, once run() is given them
        self.stop = StopSignals(suspend=options.pausing)
        self._stopped_by: int | None = None  #: the signal that ended the recording
        self._suspend = False  #: Ctrl-Z seen: release the targets and stop (pausing mode)
        self._root_status: int | None = None  #: the root's wait status, once it exited

    # -- processes and their runs -------------------------------------------------------

    def _begin(self, m: Member, target: PythonTarget | None) -> None:
        """Name the program ``m`` runs now in the trace, and sample it if it is Python."""
        first = time.monotonic_ns() - self.start_ns
        self.writer.write(
            R.Process(
                m.pid,
                m.ppid,
                launcher.cmdline(m.pid),
                max(first, 0),
                target.version_string if target is not None else None,
                self._started(m.pid),
            )
        )
        m.named = True
        m.python = target is not None
        m.run = RunSampler(target, self.shared) if target is not None else None

    def _name_pending(self, m: Member) -> None:
        """Name the program ``m`` ran when adopted, as it was then: not one we opened."""
        if m.pending is None:
            return
        cmdline, first, started = m.pending
        m.pending = None
        self.writer.write(R.Process(m.pid, m.ppid, cmdline, max(first, 0), None, started))
        m.named = True

    def _end_run(self, m: Member, how: str, status: int | None = None) -> None:
        """The program ``m`` ran is over (``how``: see ProcessEnd)."""
        self._name_pending(m)
        if m.named:
            self.writer.write(R.ProcessEnd(m.pid, self._since(), how, status))
            m.named = False
        if m.run is not None:
            self.errors += m.run.errors
            m.run.close()
            m.run = None
        m.python = False

    def _end(self, m: Member, how: str, status: int | None = None) -> None:
        """``m`` is gone (or no longer followed): end its run, let it go, forget it."""
        if m.gone:
            return
        self._end_run(m, how, status)
        m.gone = True
        if m.pauser is not None:
            m.pauser.close()
            if m is self.root and self._root_status is None:
                # an exit its closing reaped (a launched child is ours to wait for, once:
                # its exit code, lost to Popen.wait, is here)
                self._root_status = m.pauser.exit_status
            m.pauser = None
        m.handle.close()
        del self.members[m.pid]
        if self.tree is not None:
            self.tree.forget([m.pid])

    def _ended(self, m: Member, status: int | None) -> None:
        """``m`` exited; ``status`` its wait status where we saw it."""
        if status is None:
            self._end(m, "exited")
        elif os.WIFSIGNALED(status):
            self._end(m, "killed", os.WTERMSIG(status))
        else:
            self._end(m, "exited", os.waitstatus_to_exitcode(status))

    def _adopt(self, pid: int) -> None:
        """A new process of the tree: record it if it is a Python we can read, else watch
        it (its children, its execs)."""
        try:
            handle = ProcessHandle(pid)
        except ProcessLookupError:
            return  # gone already
        m = Member(pid, handle, launcher.ppid(pid))
        try:
            target: PythonTarget | None = open_target(pid)
        except TargetError as exc:
            target = None
            if _denied(pid):
                self._warn(f"pid {pid} ({_name(pid)}): cannot read it: {exc}; not recorded")
                self.writer.write(
                    R.Process(pid, m.ppid, launcher.cmdline(pid), self._since(), None, None)
                )
                self.writer.write(R.ProcessEnd(pid, self._since(), "lost"))
                handle.close()
                return
        self.members[pid] = m
        if target is None:
            # Perhaps a Python caught just after its exec, its loader not yet run (under
            # load a child's whole 0.8 s of Python went unrecorded, named not-Python at
            # once): followed as after an exec seen, until it opens or EXEC_WAIT_S passes.
            m.pending = (launcher.cmdline(pid), self._since(), self._started(pid))
            m.exec_deadline = time.monotonic() + EXEC_WAIT_S
            return
        self._begin(m, target)
        self.recorded += 1
        m.counted = True
        self._seize(m)

    def _seize(self, m: Member) -> None:
        """Pausing mode: take a new Python process; one that cannot be taken (traced by
        another tool, not ours to trace) is read without pausing, and said so once."""
        if not self.options.pausing or m.pauser is not None or m.run is None:
            return
        try:
            m.pauser = Pauser(m.pid, m.handle, shared_sigchld=self.tree is not None)
        except TargetError as exc:
            self._warn(f"pid {m.pid} ({_name(m.pid)}): cannot pause it: {exc}; read running")
            m.run.walker.consistent = False

    def _warn(self, line: str) -> None:
        if self.on_warning is not None:
            self.on_warning(line)

    def _since(self) -> int:
        return time.monotonic_ns() - self.start_ns

    def _started(self, pid: int) -> int | None:
        """When ``pid`` started, in ns since the recording's origin (None: unknown)."""
        started = launcher.start_time_ns(pid)
        return None if started is None else started - self.start_ns

    def _exec_seen(self, m: Member) -> None:
        """``m`` replaced its program: end the run, and look for a Python from now on."""
        self._end_run(m, "exec")
        m.exec_deadline = time.monotonic() + EXEC_WAIT_S

    def _follow_exec(self, m: Member) -> str | None:
        """After an exec: sample the new program once it is a CPython we can open.

        At the exec stop the new program has not run: its loader has not yet mapped
        libpython, so a Python about to start cannot be opened. Each tick tries again,
        the process running meanwhile, until EXEC_WAIT_S has passed; then it is another
        program: the end of a recording of one process, a process watched in a tree.
        """
        try:
            target = open_target(m.pid)
        except TargetError:
            assert m.exec_deadline is not None
            if time.monotonic() < m.exec_deadline and m.alive():
                return None
            m.exec_deadline = None
            if self.tree is None or not m.alive():
                return self._exited(m, None)
            if m.pending is not None:
                self._name_pending(m)  # watched, named as it was when adopted
            else:
                self._begin(m, None)  # watched: not Python, or not one we read
            if m.pauser is not None:
                m.pauser.close()  # nothing of it to pause
                m.pauser = None
            return None
        m.exec_deadline = None
        if m is self.root:
            self.target = target
        if not m.counted:  # adopted before it was a Python we could open
            self.recorded += 1
            m.counted = True
        if m.pending is not None:
            ident = launcher.exec_identity(m.pid)
            if ident != m.exec_ident:  # it exec'd the Python meanwhile (sh -c 'exec python')
                m.exec_ident = ident
                self._end_run(m, "exec")  # the program it was adopted running
            m.pending = None  # else the same program, named now that it opened
        self._begin(m, target)
        if m.pauser is None:
            self._seize(m)
        return None

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: StopSignals | None = None) -> RecordResult:
        """Record until the duration, the targets' end, an error or a stop signal.

        ``stop``: the session's stop signals, already held (see stop_signals); without
        one the recorder holds SIGINT, SIGTERM and SIGHUP itself for the recording.
        Whatever ends it, every target is released and the trace gets its end record."""
        own = stop is None
        if stop is not None:
            self.stop = stop
        stop = self.stop
        if own:
            stop.hold()
        try:
            if self.bound is None:
                return self._run()
            with self.bound:
                return self._run()
        finally:
            if own:
                stop.release()

    def _run(self) -> RecordResult:
        opts = self.options
        schedule = Schedule(opts.rate_hz, self.start_ns)
        end_ns = None if opts.duration_s is None else self.start_ns + int(opts.duration_s * 1e9)
        reason, error = "interrupted", None
        try:
            self._seize(self.root)
            if opts.pausing and self.root.pauser is None:
                raise TargetError(f"cannot pause pid {self.pid}")
            due = schedule.due()
            while True:
                if self._suspend:  # Ctrl-Z seen by the last poll
                    if not self._suspended():
                        reason = "target-exited"
                        break
                now = time.monotonic_ns()
                if end_ns is not None and now >= end_ns:
                    reason = "duration"
                    break
                if now < due:
                    wait_s = (min(due, end_ns or due) - now) / 1e9
                    ended = self._between(wait_s)
                    if ended:
                        reason = ended
                        break
                    # Polled before every tick anyway; here only after a long wait
                    # (a low rate), so Ctrl-C is never a long period late.
                    if opts.pausing and wait_s >= _LONG_WAIT_S and self._interrupted():
                        break
                    continue
                if not self._signals_seen and self._interrupted():
                    break
                if self._suspend:
                    continue  # handled at the top of the loop
                self._signals_seen = False
                ended = self._tick()
                if ended:
                    reason = ended
                    break
                due = schedule.advance(time.monotonic_ns())
                self.writer.tick()
                if self.on_progress is not None and self.on_progress(
                    (time.monotonic_ns() - self.start_ns) / 1e9,
                    self.writer.samples,
                    self.sampled_ticks,
                    self.all_errors,
                ):
                    break  # asked to end: an interruption, the target released as for one
        except FlamekitError as exc:
            reason, error = "error", str(exc)
        finally:
            for m in list(self.members.values()):
                if m.pauser is not None and m.pauser.paused:
                    m.pauser.resume()
                self._end(m, "recording-ended")
            if self.tree is not None:
                self.tree.close()
        end_now = time.monotonic_ns()
        errors = self.errors
        child_status = self._child_status(self._root_status, reason)
        if reason == "interrupted" and self._stopped_by is not None:
            error = signal.Signals(self._stopped_by).name  # which signal, for the end record
        try:
            self.writer.close(
                reason,
                error=error,
                errors=errors,
                end_ns=end_now,
                cut_pauses=self.bound.hits if self.bound is not None else 0,
            )
        except OSError as exc:
            raise TargetError(f"cannot finish the trace: {exc.strerror or exc}") from None
        return RecordResult(
            reason,
            self.writer.samples,
            errors,
            self.ticks,
            schedule.missed,
            (end_now - self.start_ns) / 1e9,
            child_status,
            error,
            self.sampled_ticks,
            self.recorded,
        )

    @property
    def all_errors(self) -> int:
        """Sampling errors so far, of every run."""
        return self.errors + sum(m.run.errors for m in self.members.values() if m.run)

    def _tick(self) -> str | None:
        """Sample every process followed; returns an end reason when none is left."""
        wrote = False
        members = list(self.members.values())
        for m in members:
            if m.pauser is not None and m.run is not None and m.exec_deadline is None:
                m.run.prepare(m.pauser)
        for m in members:
            if m.gone:
                continue
            if m.exec_deadline is not None:
                # No sample until the new program is open. Each try takes longer than a
                # period at high rates, so the loop never waits between ticks, and a stop
                # the process makes meanwhile (our interrupt reaching the exec'ing thread)
                # would hold it, unserviced, for the whole EXEC_WAIT_S: service it here.
                if m.pauser is not None:
                    ended = self._on_events(m, m.pauser.service(0))
                    if ended or m.gone:
                        if ended:
                            return ended
                        continue
                ended = self._follow_exec(m)
                if ended:
                    return ended
                continue
            run = m.run
            if run is None:
                continue  # watched: no program of it we read
            try:
                events = run.tick(m.pauser)
            except ProcessGoneError:
                if m.pauser is not None:
                    ended = self._exited(m, m.pauser.exit_status)
                else:
                    # Non-blocking: a read caught mid-exec fails as if the process were
                    # gone (1 run in 10 of the exec test ended there); see whether it is.
                    run.errors += 1
                    ended = self._check(m)
                if ended:
                    return ended
                continue
            if events is not None:
                ended = self._on_events(m, events)
                if ended:
                    return ended
            elif run.wrote:
                wrote = True
        self.ticks += 1
        if wrote:
            self.sampled_ticks += 1
        return None if self.members else "target-exited"

    def _exited(self, m: Member, status: int | None) -> str | None:
        """``m`` exited (``status``: its wait status, if we saw it): the end of a
        recording of one process, of a member of a tree."""
        if m is self.root:
            self._root_status = status
        self._ended(m, status)
        if m is self.root and self.tree is None:
            return "target-exited"
        return None if self.members else "target-exited"

    # -- between ticks ----------------------------------------------------------------

    def _on_events(self, m: Member, ev: Events) -> str | None:
        if m.run is not None:
            m.run.forget_threads(ev.exited_threads)
        if ev.exited:
            return self._exited(m, ev.exit_status)
        if ev.execed:
            self._exec_seen(m)
        return None

    def _between(self, wait_s: float) -> str | None:
        """Wait for the next tick, servicing what happens meanwhile."""
        if self.tree is not None and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + POLL_S
            for pid in self.tree.poll():
                self._adopt(pid)
        if not self.options.pausing:
            return self._wait_nonblocking(wait_s)
        if len(self.members) == 1 and self.tree is None:
            m = self.root
            assert m.pauser is not None
            return self._on_events(m, m.pauser.service(wait_s))
        ended = self._check_all()
        if ended:
            return ended
        for m in list(self.members.values()):
            if m.pauser is not None:
                ended = self._on_events(m, m.pauser.service(0))
                if ended:
                    return ended
        # Sleep until an event of a tracee (SIGCHLD), a stop signal or the next tick.
        info = signal.sigtimedwait({signal.SIGCHLD, *self.stop.watched}, wait_s)
        if info is not None and info.si_signo in self.stop.watched:
            if info.si_signo == signal.SIGTSTP:
                self._suspend = True
                return None
            self._pass_on(info)
            return "interrupted"
        return None

    def _wait_nonblocking(self, wait_s: float) -> str | None:
        # Whether the targets are still there, at most every _EXIT_CHECK_S: a walk of a
        # process that is gone fails and ends its run anyway, so this only bounds how
        # long the end of a target between ticks (a low rate) goes unnoticed.
        ended = self._check_all()
        if ended:
            return ended
        if wait_s > 0:
            # The wait is the Ctrl-C poll too: one system call, not two, a tick. A signal
            # arriving after it stays pending for the next one, a period at most.
            info = self.stop.poll(wait_s)
            if info is not None:
                self._pass_on(info)
                return "interrupted"
            self._signals_seen = True
        return None

    def _check_all(self) -> str | None:
        """Every _EXIT_CHECK_S: processes not traced (non-blocking mode, watched ones)
        are checked for an exit or an exec, which no ptrace event tells us of."""
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + _EXIT_CHECK_S
        for m in list(self.members.values()):
            if m.pauser is None:
                ended = self._check(m)
                if ended:
                    return ended
        return None

    def _check(self, m: Member) -> str | None:
        """ "target-exited" (or, in a tree, the member's end) if ``m`` is gone; after an
        exec, follow it as pausing mode does (non-blocking lost every sample after the
        exec: 160 samples against 361)."""
        if m is self.root and self.launched is not None and self.launched.poll() is not None:
            return self._exited(m, None)
        if not m.alive():  # the process, not a new one of its pid
            return self._exited(m, None)
        ident = launcher.exec_identity(m.pid)
        if ident is None:
            return self._exited(m, None)
        if ident != m.exec_ident:
            m.exec_ident = ident
            if m.exec_deadline is None or m.pending is not None:
                self._exec_seen(m)  # (a pending program is named, and ends here)
        return None

    def _interrupted(self) -> bool:
        """Ctrl-C, SIGTERM or SIGHUP, polled once a tick (blocked while recording).

        A SIGINT sent to the recorder alone (kill -INT) is passed on to a launched
        child; one from the terminal already reached the child through its process group.
        """
        info = self.stop.poll()
        if info is None:
            return False
        if info.si_signo == signal.SIGTSTP:
            self._suspend = True
            return False
        self._pass_on(info)
        return True

    def _suspended(self) -> bool:
        """Ctrl-Z (SIGTSTP): release the targets, stop as the terminal asked, and take
        them again once continued; False if none is left then. A stopped tracer holds
        every signal its tracees get (each one stops the receiving thread until the
        tracer passes it on): a target with a 10 ms SIGALRM timer was frozen for 2 s
        while the recorder sat stopped. Only pausing mode traces the targets; without it
        SIGTSTP is left to stop us."""
        self._suspend = False
        held = [m for m in self.members.values() if m.pauser is not None]
        for m in held:
            assert m.pauser is not None
            m.pauser.close()
            m.pauser = None
        os.kill(os.getpid(), signal.SIGSTOP)  # SIGTSTP's own action, which we hold back
        for m in held:
            try:
                m.pauser = Pauser(m.pid, m.handle, shared_sigchld=self.tree is not None)
            except TargetError:
                gone = (
                    self.launched.poll() is not None if m is self.root and self.launched else False
                )
                if not gone and m.alive():
                    raise
                if self._exited(m, None):  # it ended while we were stopped
                    return False
        return bool(self.members)

    def _pass_on(self, info: signal.struct_siginfo) -> None:
        """Note what ended the recording; a SIGINT sent to the recorder alone goes on to a
        launched child."""
        self._stopped_by = info.si_signo
        if (
            self.launched is not None
            and info.si_signo == signal.SIGINT
            and info.si_code in (_SI_USER, _SI_QUEUE)
        ):
            try:
                os.kill(self.pid, signal.SIGINT)
            except OSError:
                pass

    def _child_status(self, status: int | None, reason: str) -> int | None:
        """A launched child's exit code once it has exited; None while it runs on.

        A recording cut short (duration, Ctrl-C) waits only briefly: after a Ctrl-C from
        the terminal the child is usually exiting too; one still running when the
        recording ends is stopped by the record command.
        """
        if self.launched is None:
            return None
        if status is not None:
            return os.waitstatus_to_exitcode(status)
        try:
            return self.launched.wait(timeout=2.0 if reason != "duration" else 0.05)
        except subprocess.TimeoutExpired:
            return None


def _denied(pid: int) -> bool:
    """Whether ``pid``'s memory map is closed to us (not ours to read), as opposed to a
    process that is readable but runs no CPython."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            f.read(1)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _name(pid: int) -> str:
    return " ".join(launcher.cmdline(pid)) or "?"

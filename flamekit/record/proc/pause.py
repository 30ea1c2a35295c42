"""Stop a live target for a consistent stack read, then let it go, without ever hurting it.

A stack read from outside races the target: frames are pushed and popped while the
bytes are copied. Stopping every thread for the length of one read makes the sample
consistent. ``ptrace`` can do that cheaply if we seize each thread once for the whole
recording (``PTRACE_SEIZE``) and then, per sample, ``PTRACE_INTERRUPT`` + wait +
``PTRACE_CONT``; attaching and detaching per sample costs far more.

Being a tracer has duties, and this module is where they are kept:

* Every signal sent to the target first stops the receiving thread (a signal-delivery
  stop). It must be passed on when the thread is resumed, or the target silently
  loses it. That holds while the recorder is idle between samples too, which is why
  the sampler calls :meth:`Pauser.service` while it waits.
* Job control (``SIGSTOP``, ``SIGTSTP``, ...) must behave as without a tracer: a
  group-stopped thread is parked with ``PTRACE_LISTEN`` so it stays stopped until
  ``SIGCONT`` and is never resumed by us. (While we trace it, the kernel shows such a
  thread as ``t``, tracing stop, in ``/proc``; after :meth:`Pauser.close` it is ``T``.)
* New threads are followed (``PTRACE_O_TRACECLONE``), exits and ``execve`` are
  reported to the caller, and :meth:`Pauser.close` detaches every thread, passing on
  any signal it was holding.
* ``PTRACE_SEIZE`` (unlike ``PTRACE_ATTACH``) sends no ``SIGSTOP``, so if the recorder
  dies, even by ``SIGKILL``, the kernel detaches and restarts every tracee.

Threading rule: Linux accepts ptrace requests only from the thread that seized the
tracee, so every method of a :class:`Pauser` must be called from the thread that
created it. Methods check this and raise ``RuntimeError`` otherwise.

Waiting: ptrace stops are announced to the tracer with ``SIGCHLD``. The Pauser blocks
``SIGCHLD`` in its thread and sleeps in ``sigtimedwait``, which wakes within
microseconds of an event and costs no CPU while nothing happens. If another thread of
the recorder leaves ``SIGCHLD`` unblocked the kernel may hand the signal to that
thread instead. So the constructor looks: when every thread of the recorder blocks
``SIGCHLD`` (threads started later inherit the mask) sleeps are long; otherwise they
are cut into slices of a few milliseconds, so an event is noticed that late at worst,
never lost, at the price of some idle wake-ups (about 2 % of a CPU here). Create the
Pauser before starting other threads to get the fast path.

Reaping: the Pauser waits only for the thread ids it traces, never for ``-1`` reaping
the recorder's other children. If the recorder is also the target's parent (it started
the target), the Pauser reaps the target's exit and reports the wait status in
:attr:`Events.exit_status` / :attr:`Pauser.exit_status`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ptrace import PtraceError
from ptrace.binding.func import ptrace as _ptrace

from flamekit.errors import TargetError
from flamekit.record.proc.handle import ProcessHandle

__all__ = ["Events", "PauseResult", "Pauser"]

# linux/ptrace.h
PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_STOP = 128
WALL = 0x40000000  # __WALL: threads and processes alike

# Not PTRACE_O_TRACEEXIT: it would add a stop to every thread exit (targets that churn
# threads would pay for it) and we learn about exits from waitpid anyway. Not
# PTRACE_O_EXITKILL: the target must outlive the recorder.
SEIZE_OPTIONS = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC
STOP_SIGNALS = frozenset(
    {int(signal.SIGSTOP), int(signal.SIGTSTP), int(signal.SIGTTIN), int(signal.SIGTTOU)}
)
_WAITID_PEEK = os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT | WALL
_WAIT_NOHANG = WALL | os.WNOHANG
_PF_KTHREAD = 0x00200000

# Longest single sleep in sigtimedwait when SIGCHLD may go to another thread: bounds
# the delay then (see the module docstring); and when it cannot.
# thread of the recorder (see the module docstring).
_SLICE_PAUSE = 0.001
_SLICE_IDLE = 0.005
_SLICE_LONG = 0.25
_SIGCHLD_BIT = 1 << (int(signal.SIGCHLD) - 1)

# Per-thread states.
_RUN = 0  # executing, or about to stop for a trap we asked for: not held by us
_STOP = 1  # in a ptrace-stop we saw and have not yet resumed
_LISTEN = 2  # group-stopped by job control, parked with PTRACE_LISTEN


class _Thread:
    __slots__ = ("tid", "state", "sig", "group")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.state = _RUN
        self.sig = 0  # signal to pass on when resumed from _STOP
        self.group = False  # _STOP is a group-stop: resume with LISTEN, not CONT


@dataclass
class Events:
    """What happened to the target since the previous call that returned events.

    The sampler uses this to count and to react: ``execed`` means the memory layout
    changed (re-open the reader), ``exited`` means the recording is over.
    """

    new_threads: list[int] = field(default_factory=list)  #: tids now followed
    exited_threads: list[int] = field(default_factory=list)  #: tids gone
    signals: list[tuple[int, int]] = field(default_factory=list)  #: (tid, signo) passed on
    group_stops: int = 0  #: thread stops caused by job control (SIGSTOP, SIGTSTP...)
    execed: bool = False  #: the process called execve
    exited: bool = False  #: the whole process is gone (reported once)
    exit_status: int | None = None  #: its raw wait status, when it was reported to us

    def __bool__(self) -> bool:
        return bool(
            self.new_threads
            or self.exited_threads
            or self.signals
            or self.group_stops
            or self.execed
            or self.exited
        )


@dataclass(frozen=True)
class PauseResult:
    """The outcome of :meth:`Pauser.pause`.

    ``stopped`` threads are not executing: held in a ptrace-stop, or group-stopped by
    job control. ``running`` threads did not stop within the timeout (typically stuck
    in the kernel, e.g. a vfork parent waiting for its child); their user-space stack
    is usually still stable, but the read is not guaranteed consistent.
    """

    stopped: tuple[int, ...]
    running: tuple[int, ...]
    events: Events

    @property
    def complete(self) -> bool:
        """True when every traced thread is stopped (and the process still exists)."""
        return bool(self.stopped) and not self.running


def _errno_of(exc: PtraceError) -> int:
    return getattr(exc, "errno", None) or 0


def _status_fields(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _sigchld_blocked_everywhere() -> bool:
    """True if no thread of this process can take a SIGCHLD meant for the tracer."""
    try:
        for name in os.listdir("/proc/self/task"):
            mask = _status_fields(f"/proc/self/task/{name}/status").get("SigBlk")
            if mask is None:
                continue  # ended meanwhile
            if not int(mask, 16) & _SIGCHLD_BIT:
                return False
    except (OSError, ValueError):
        return False
    return True


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class Pauser:
    """Seize every thread of process ``pid`` and pause/resume it on demand.

    Seizing happens in the constructor: it does not stop the target. Use as a context
    manager (or call :meth:`close`) so the target is always detached. All methods must
    be called from the creating thread (see the module docstring for why).

    Raises :class:`flamekit.errors.TargetError` with one line if the process cannot be
    traced: no such process, permission denied, or already traced by another tracer.

    ``process``: the target as opened before (its pidfd). Seizing goes by pid, and the
    target may have exited since and its pid gone to a new process: that one would be
    the one traced and paused. Checked after seizing (while seized, a process's exit is
    ours to reap, so its pid cannot be reused before we know), the newcomer is let go.
    """

    def __init__(self, pid: int, process: ProcessHandle | None = None) -> None:
        self.pid = int(pid)
        self._owner = threading.get_ident()
        self._me = threading.get_native_id()  # what /proc shows as TracerPid
        self._threads: dict[int, _Thread] = {}
        self._events = Events()
        self._holding = False  # keep new stops held (paused) instead of resuming them
        self._paused = False
        self._closing = False
        self._closed = False
        self._exited = False
        self._exit_status: int | None = None
        self._more = False  # _drain stopped early with events left
        self._msg = ctypes.c_ulong(0)
        self._msg_addr = ctypes.addressof(self._msg)
        if self.pid <= 0:
            raise TargetError(f"invalid process id {pid}")
        if self.pid == os.getpid():
            raise TargetError("flamekit cannot trace its own process")
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        self._unblock_sigchld = signal.SIGCHLD not in old
        #: Every event raises SIGCHLD in our thread: a wait that timed out saw none.
        self._sigchld_ours = _sigchld_blocked_everywhere()
        if self._sigchld_ours:
            self._slice_pause = self._slice_idle = _SLICE_LONG
        else:
            self._slice_pause, self._slice_idle = _SLICE_PAUSE, _SLICE_IDLE
        try:
            self._seize_all()
            if process is not None and not process.alive():
                raise TargetError(f"process {self.pid} has exited")
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- public API

    def __enter__(self) -> Pauser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def threads(self) -> tuple[int, ...]:
        """Thread ids currently traced."""
        return tuple(self._threads)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def exited(self) -> bool:
        """True once the process is known to be gone."""
        return self._exited

    @property
    def exit_status(self) -> int | None:
        """Raw wait status of the process, if its exit was reported to us."""
        return self._exit_status

    @property
    def job_stopped(self) -> bool:
        """True while every thread is stopped by job control (SIGSTOP and friends).

        The sampler may skip samples then: the stacks cannot change.
        """
        return bool(self._threads) and all(
            t.state == _LISTEN or (t.state == _STOP and t.group) for t in self._threads.values()
        )

    def pause(self, timeout: float = 0.05) -> PauseResult:
        """Stop every thread and return once all are stopped, or after ``timeout`` s.

        Threads already group-stopped are left alone (they do not run). Events seen
        while stopping (signals held until :meth:`resume`, new threads, exits, exec)
        are in the result. A process that is gone gives an empty, incomplete result
        with ``events.exited`` set on the first call that notices; no exception.
        """
        self._check()
        if self._paused:
            raise RuntimeError("Pauser.pause() called while already paused")
        self._paused = True
        self._holding = True
        for t in list(self._threads.values()):
            if t.state == _RUN:
                self._interrupt(t)
        deadline = time.monotonic() + timeout
        if not self._sigchld_ours:
            # A stop reported to another thread of ours would go unseen until a slice
            # ends; with SIGCHLD ours, the signal itself tells us (one syscall less).
            self._scan([t.tid for t in self._threads.values() if t.state == _RUN])
        self._wait(self._none_running, deadline, self._slice_pause, sweep=True)
        stopped = tuple(tid for tid, t in self._threads.items() if t.state != _RUN)
        running = tuple(tid for tid, t in self._threads.items() if t.state == _RUN)
        return PauseResult(stopped, running, self._take_events())

    def resume(self) -> None:
        """Let every held thread run again, passing on any signal held for it.

        Group-stopped threads stay stopped (job control). A thread that did not stop
        in time during :meth:`pause` is resumed by :meth:`service` when it stops.
        """
        self._check()
        self._paused = False
        self._holding = False
        for t in list(self._threads.values()):
            if t.state == _STOP:
                self._release(t)

    def service(self, timeout: float) -> Events:
        """Handle tracee events for up to ``timeout`` seconds, then return them.

        The sampler calls this while it waits for the next sample: signals are passed
        on at once, job-control stops are parked, new threads are followed. It returns
        early when the process exec'd or exited, since the caller must act. While
        paused it keeps new stops held. ``service(0)`` handles what is pending.
        """
        self._check()
        deadline = time.monotonic() + timeout
        if timeout <= 0 or not self._sigchld_ours:
            self._drain()
        # Else a pending event has SIGCHLD pending too, so _wait's first sleep returns
        # at once and drains: no waitid for the usual case of nothing to do.
        self._wait(self._must_return, deadline, self._slice_idle)
        return self._take_events()

    def close(self, timeout: float = 2.0) -> tuple[int, ...]:
        """Detach every thread and leave the target running (or job-stopped as it was).

        A held signal is delivered on detach. Safe to call more than once and after
        the target exited. Returns the thread ids that could not be detached because
        they did not reach a stop within ``timeout`` (stuck in the kernel): those stay
        traced until they stop and are detached by a later ``close()``, or until the
        recorder process exits, when the kernel releases them.
        """
        self._check(closing=True)
        if self._closed and not self._threads:
            return ()
        self._closing = True
        self._holding = False
        try:
            for t in list(self._threads.values()):
                if t.state == _STOP:
                    self._release(t)  # detaches
            for t in list(self._threads.values()):
                if t.state in (_RUN, _LISTEN):
                    self._interrupt(t)
            deadline = time.monotonic() + timeout
            self._drain()
            self._wait(lambda: not self._threads, deadline, self._slice_pause, sweep=True)
            left = tuple(self._threads)
        finally:
            self._closed = True
            self._paused = False
            if self._unblock_sigchld and not self._threads:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                self._unblock_sigchld = False
        return left

    # ------------------------------------------------------------------ seizing

    def _seize_all(self) -> None:
        status = _status_fields(f"/proc/{self.pid}/status")
        if not status:
            raise TargetError(f"no such process: {self.pid}")
        if status.get("Tgid", str(self.pid)) != str(self.pid):
            # Seizing would work on that one thread, but the process is what we want.
            raise TargetError(
                f"{self.pid} is a thread of process {status['Tgid']}: give the process id"
            )
        try:
            _ptrace(PTRACE_SEIZE, self.pid, 0, SEIZE_OPTIONS)
        except PtraceError as exc:
            code = _errno_of(exc)
            # A main thread that ended on its own (pthread_exit) is a zombie the kernel
            # refuses to seize, while the other threads run on: trace those.
            if not (code == errno.EPERM and self._zombie_leader_with_threads()):
                raise self._seize_error(code) from None
        else:
            self._threads[self.pid] = _Thread(self.pid)
        # Threads started by a not-yet-seized thread are not followed automatically:
        # list again until a listing shows nothing new.
        for _ in range(1000):
            try:
                tids = [int(name) for name in os.listdir(f"/proc/{self.pid}/task")]
            except OSError:
                return  # gone already: the exit will be reported by waitpid
            new = [tid for tid in tids if tid not in self._threads and tid != self.pid]
            if not new:
                if not self._threads:
                    raise TargetError(f"process {self.pid} has exited")
                return
            for tid in new:
                self._seize_thread(tid)
        raise TargetError(f"process {self.pid} creates threads faster than they can be seized")

    def _zombie_leader_with_threads(self) -> bool:
        if _status_fields(f"/proc/{self.pid}/status").get("State", "")[:1] != "Z":
            return False
        try:
            return len(os.listdir(f"/proc/{self.pid}/task")) > 1
        except OSError:
            return False

    def _seize_thread(self, tid: int) -> None:
        try:
            _ptrace(PTRACE_SEIZE, tid, 0, SEIZE_OPTIONS)
        except PtraceError as exc:
            code = _errno_of(exc)
            if code == errno.ESRCH:
                return  # ended between listing and seizing
            status = _status_fields(f"/proc/{self.pid}/task/{tid}/status")
            if code == errno.EPERM and status.get("TracerPid") == str(self._me):
                pass  # already ours: cloned by a seized thread, its event is pending
            elif code == errno.EPERM and (not status or status.get("State", "")[:1] in "ZX"):
                return  # exiting
            else:
                raise self._seize_error(code) from None
        self._threads.setdefault(tid, _Thread(tid))

    def _seize_error(self, code: int) -> TargetError:
        pid = self.pid
        if code == errno.ESRCH or not os.path.exists(f"/proc/{pid}"):
            return TargetError(f"no such process: {pid}")
        status = _status_fields(f"/proc/{pid}/status")
        if status.get("Tgid") and status["Tgid"] != str(pid):
            return TargetError(
                f"{pid} is a thread of process {status['Tgid']}: give the process id"
            )
        if code != errno.EPERM:
            return TargetError(f"cannot trace process {pid}: {os.strerror(code)}")
        tracer = int(status.get("TracerPid", "0") or 0)
        if tracer:
            tgid = int(_status_fields(f"/proc/{tracer}/status").get("Tgid", tracer))
            if tgid == os.getpid():
                return TargetError(f"process {pid} is already traced by this process")
            return TargetError(
                f"process {pid} is already traced by process {tgid} ({_comm(tgid)}): "
                "detach that debugger or profiler first"
            )
        if status.get("State", "")[:1] in "ZX":
            return TargetError(f"process {pid} has exited")
        try:
            with open(f"/proc/{pid}/stat") as f:
                flags = int(f.read().rsplit(")", 1)[1].split()[6])
            if flags & _PF_KTHREAD:
                return TargetError(f"process {pid} is a kernel thread")
        except (OSError, ValueError, IndexError):
            pass
        yama = ""
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                yama = f" (it is {f.read().strip()} here)"
        except OSError:
            pass
        return TargetError(
            f"permission denied to trace process {pid}: run flamekit as the target's user "
            f"or as root; check /proc/sys/kernel/yama/ptrace_scope{yama}; "
            "in a container, add CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE)"
        )

    # ------------------------------------------------------------ event handling

    def _check(self, closing: bool = False) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError("a Pauser must be used from the thread that created it")
        if self._closed and not closing:
            raise RuntimeError("Pauser is closed")

    def _none_running(self) -> bool:
        return not any(t.state == _RUN for t in self._threads.values())

    def _must_return(self) -> bool:
        return self._events.execed or self._events.exited

    def _wait(
        self, done: Callable[[], bool], deadline: float, slice_: float, sweep: bool = False
    ) -> None:
        """Handle events until ``done()`` or the deadline, sleeping on SIGCHLD."""
        sigset = {signal.SIGCHLD}
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self._more:
                got = signal.sigtimedwait(sigset, min(remaining, slice_))
                if got is None and self._sigchld_ours:
                    continue  # timed out: no event arrived, nothing to drain
            self._drain()
        if sweep and not done():
            # Last sweep over each tid: also drops tids that vanished without a report.
            self._scan(list(self._threads))

    def _drain(self) -> None:
        """Handle the events already reported, asking the kernel who has one.

        Bounded, so a target flooding itself with signals cannot keep us here past a
        deadline; ``self._more`` then tells :meth:`_wait` to come back without sleeping.
        """
        self._more = False
        for _ in range(4 * len(self._threads) + 64):
            if not self._threads:
                return
            try:
                info = os.waitid(os.P_ALL, 0, _WAITID_PEEK)
            except ChildProcessError:
                self._scan(list(self._threads))
                return
            if info is None:
                return
            tid = info.si_pid
            if tid in self._threads and self._wait_tid(tid):
                continue
            # Another child of the recorder (or a thread not yet known) is first in
            # line: ask each of ours instead.
            self._scan(list(self._threads))
            return
        self._more = True

    def _scan(self, tids: list[int]) -> None:
        for tid in tids:
            if tid in self._threads:
                self._wait_tid(tid)

    def _wait_tid(self, tid: int) -> bool:
        try:
            got, status = os.waitpid(tid, _WAIT_NOHANG)
        except ChildProcessError:
            self._gone(tid, None)  # no longer our tracee, and nothing to report
            return True
        if not got:
            return False
        self._handle(tid, status)
        return True

    def _handle(self, tid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._gone(tid, status)
            return
        if not os.WIFSTOPPED(status):
            return
        t = self._threads.get(tid)
        if t is None:
            t = self._threads[tid] = _Thread(tid)
        sig = os.WSTOPSIG(status)
        event = status >> 16
        t.state = _STOP
        t.sig = 0
        t.group = False
        if event == PTRACE_EVENT_STOP:
            # Our interrupt, a new thread's first stop, or a SIGCONT notification
            # report SIGTRAP; a group-stop reports the stopping signal.
            if sig in STOP_SIGNALS:
                t.group = True
                self._events.group_stops += 1
        elif event == PTRACE_EVENT_CLONE:
            new = self._eventmsg(tid)
            if new and new not in self._threads:
                self._threads[new] = _Thread(new)
                self._events.new_threads.append(new)
        elif event == PTRACE_EVENT_EXEC:
            self._events.execed = True
            former = self._eventmsg(tid)
            if former and former != tid and former in self._threads:
                # The exec'ing thread took over the leader's id; its old id is not
                # reported again.
                del self._threads[former]
                self._events.exited_threads.append(former)
        elif event == 0:
            t.sig = sig  # signal-delivery stop: the signal must go on
            self._events.signals.append((tid, sig))
        if not self._holding:
            self._release(t)

    def _gone(self, tid: int, status: int | None) -> None:
        if self._threads.pop(tid, None) is not None:
            self._events.exited_threads.append(tid)
        # The main thread is reported last, once every other thread is gone; without it
        # (it ended early and could not be seized) the last thread going means the end.
        if (tid == self.pid or not self._threads) and not self._exited:
            self._exited = True
            self._exit_status = status
            self._events.exited = True
            self._events.exit_status = status
            for other in list(self._threads):
                if not self._pending(other):
                    del self._threads[other]

    def _pending(self, tid: int) -> bool:
        """True if ``tid`` is still our tracee with something left to reap."""
        try:
            got, status = os.waitpid(tid, _WAIT_NOHANG)
        except ChildProcessError:
            return False
        if got:
            self._handle(tid, status)
        return tid in self._threads

    def _eventmsg(self, tid: int) -> int:
        try:
            _ptrace(PTRACE_GETEVENTMSG, tid, 0, self._msg_addr)
        except PtraceError:
            return 0
        return int(self._msg.value)

    def _interrupt(self, t: _Thread) -> None:
        try:
            _ptrace(PTRACE_INTERRUPT, t.tid, 0, 0)
        except PtraceError as exc:
            if _errno_of(exc) != errno.ESRCH:
                raise TargetError(f"cannot interrupt thread {t.tid}: {exc}") from None
            self._wait_tid(t.tid)  # dying: reap it now if it is ready

    def _release(self, t: _Thread) -> None:
        """Resume a thread from its stop: detach, LISTEN or CONT with its signal."""
        sig, t.sig = t.sig, 0
        try:
            if self._closing:
                _ptrace(PTRACE_DETACH, t.tid, 0, 0 if t.group else sig)
                del self._threads[t.tid]
                return
            if t.group:
                _ptrace(PTRACE_LISTEN, t.tid, 0, 0)
                t.state = _LISTEN
            else:
                _ptrace(PTRACE_CONT, t.tid, 0, sig)
                t.state = _RUN
        except PtraceError as exc:
            if _errno_of(exc) != errno.ESRCH:
                raise TargetError(f"cannot resume thread {t.tid}: {exc}") from None
            t.state = _RUN  # killed while stopped: its exit will be reported

    def _take_events(self) -> Events:
        events, self._events = self._events, Events()
        return events

"""The sampling loop: on a drift-free schedule, read every thread's stack, write samples.

Per tick: note which threads are on CPU (from /proc, before pausing: a paused thread
always looks asleep), pause the target (unless nonblocking), walk all stacks, check the
code objects they name, resume, then write one sample per thread. Between ticks the
pauser services the target (signals passed on, job control kept, new threads followed).

The loop is the only part with side effects on the target; everything it learns goes
into the trace writer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from flamekit import __version__
from flamekit.errors import FlamekitError, TargetError
from flamekit.record.code_reader import CodeInfo, CodeReader
from flamekit.record.code_refs import CodeRefs
from flamekit.record.pause_bound import DEFAULT_S as DEFAULT_PAUSE_S
from flamekit.record.pause_bound import PauseBound
from flamekit.record.proc import launcher
from flamekit.record.proc.idle import ThreadStates, idle_by_frame
from flamekit.record.proc.memory import ProcessGoneError, ReadError
from flamekit.record.proc.pause import Events, Pauser
from flamekit.record.schedule import Schedule
from flamekit.record.target import PythonTarget, open_target
from flamekit.record.threadnames import ThreadNames
from flamekit.record.walk import StackWalker, ThreadStack
from flamekit.stop_signals import StopSignals
from flamekit.trace import records as R
from flamekit.trace.writer import TraceWriter

_SI_USER = 0  # siginfo si_code: sent by kill() from a process (not the terminal)
_SI_QUEUE = -1
#: After an exec, how long the new program may take to become an openable CPython
#: (its loader maps libpython only once it runs) before the recording ends.
EXEC_WAIT_S = 1.0


_code, _offset = itemgetter(0), itemgetter(1)  # of a walker frame
#: Most stacks remembered with their ids (Recorder._memo); emptied when full.
MEMO_STACKS = 4096
#: First retry of a thread name not found, doubling to 2 s: a thread runs briefly before
#: threading lists it, and a short one may be gone at a later first retry (at 50 ms, 4 of
#: 40 threads of 50 ms stayed unnamed).
NAME_RETRY_S = 0.005

#: Waits this long or longer are followed by a Ctrl-C / SIGTERM check (shorter ones by the
#: check every tick makes anyway).
_LONG_WAIT_S = 0.01
#: Nonblocking mode: how often to check between ticks that the target still exists.
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


#: Called after every tick with (seconds since the start, samples written, ticks that
#: recorded a stack, sampling errors): the figures of a progress line.
ProgressCallback = Callable[[float, int, int, int], None]


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


class Recorder:
    """Records one target into one trace writer. Call :meth:`run` once."""

    def __init__(
        self,
        target: PythonTarget,
        out,
        options: RecordOptions,
        launched: subprocess.Popen[bytes] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.target = target
        self.on_progress = on_progress
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
                "subprocesses": False,
            },
        )
        self.writer = TraceWriter(out, header)
        self.writer.write(R.Process(self.pid, launcher.ppid(self.pid), header.cmdline, 0))
        self._open_readers(target)
        self.states = ThreadStates(self.pid)
        #: (tstate, thread id, native tid) -> thread ref. The native tid is part of the key:
        #: a new thread often reuses an ended one's tstate and pthread_t, and must not be
        #: merged into it (wrong tid and name). Only the current thread per (tstate,
        #: thread id) is kept, so a target churning threads does not grow these maps.
        self.threads: dict[tuple[int, int, int | None], int] = {}
        self._live_keys: dict[tuple[int, int], tuple[int, int, int | None]] = {}
        self._next_thread_ref = 0
        self.thread_tids: dict[int, int | None] = {}  # thread ref -> native tid
        self.unnamed: set[int] = set()  # thread refs whose name is not known yet
        #: thread ref -> (native tid, python thread id, first seen ns since origin)
        self.thread_meta: dict[int, tuple[int | None, int, int]] = {}
        self._next_name_try = 0
        self._name_backoff = NAME_RETRY_S
        self.errors = 0
        self.ticks = 0
        self.sampled_ticks = 0  #: ticks that wrote at least one sample
        self._exec_deadline: float | None = None  # set while following an exec
        self._blocked: list[int] = []  #: native tids found blocked at the last tick
        self._next_exit_check = 0.0  #: nonblocking: monotonic time of the next exit check
        #: nonblocking: the wait before this tick already looked for Ctrl-C / SIGTERM
        self._signals_seen = False
        #: the session's, once run() is given them
        self.stop = StopSignals(suspend=options.pausing)
        self._stopped_by: int | None = None  #: the signal that ended the recording
        self._suspend = False  #: Ctrl-Z seen: release the target and stop (pausing mode)
        #: pausing mode: what lets go of a target a walk holds too long
        self.bound = (
            PauseBound(options.max_pause_s, self._let_go)
            if options.pausing and options.max_pause_s
            else None
        )
        #: nonblocking: how the program looked at the last check (an exec changes it)
        self._exec_ident = launcher.exec_identity(self.pid)

    def _open_readers(self, target: PythonTarget) -> None:
        old = getattr(self, "codes", None)  # after an exec: code refs must stay unique
        self.target = target
        self.walker = StackWalker(target, consistent=self.options.pausing)
        self._gil_names_thread_state = target.layout.gil_names_thread_state
        self.code_reader = CodeReader(target)
        self.codes = CodeRefs(
            self.code_reader, self._write_code, old.next_ref if old is not None else 1
        )
        self.names = ThreadNames(target, self.code_reader)
        #: A walked stack (its frames as the walker gives them) -> (its stack id, its
        #: distinct code addresses). A CPU-bound program comes back to the same few
        #: stacks sample after sample; for one seen before, only its codes are checked
        #: (the reuse guard) and the id is taken as it was. Emptied whenever a code
        #: address turns out to hold another code (ids name refs).
        self._memo: dict[tuple[tuple[int, int], ...], tuple[int, tuple[int, ...]]] = {}
        self._memo_reused = 0

    def _write_code(self, ref: int, info: CodeInfo) -> None:
        self.writer.write(info.record(ref, self.pid))

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: StopSignals | None = None) -> RecordResult:
        """Record until the duration, the target's end, an error or a stop signal.

        ``stop``: the session's stop signals, already held (see stop_signals); without
        one the recorder holds SIGINT, SIGTERM and SIGHUP itself for the recording.
        Whatever ends it, the target is released and the trace gets its end record."""
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
        pauser: Pauser | None = None
        reason, error = "interrupted", None
        try:
            if opts.pausing:
                pauser = Pauser(self.pid, self.target.memory.process)
            due = schedule.due()
            while True:
                if self._suspend:  # Ctrl-Z seen by the last poll
                    pauser = self._suspended(pauser)
                    if pauser is None and opts.pausing:
                        reason = "target-exited"
                        break
                now = time.monotonic_ns()
                if end_ns is not None and now >= end_ns:
                    reason = "duration"
                    break
                if now < due:
                    wait_s = (min(due, end_ns or due) - now) / 1e9
                    if pauser is not None:
                        ended = self._on_events(pauser.service(wait_s))
                    else:
                        ended = self._wait_nonblocking(wait_s)
                    if ended:
                        reason = ended
                        break
                    # Polled before every tick anyway; here only after a long wait
                    # (a low rate), so Ctrl-C is never a long period late.
                    if pauser is not None and wait_s >= _LONG_WAIT_S and self._interrupted():
                        break
                    continue
                if not self._signals_seen and self._interrupted():
                    break
                if self._suspend:
                    continue  # handled at the top of the loop
                self._signals_seen = False
                ended = self._tick(pauser)
                if ended:
                    reason = ended
                    break
                due = schedule.advance(time.monotonic_ns())
                self.writer.tick()
                if self.on_progress is not None:
                    self.on_progress(
                        (time.monotonic_ns() - self.start_ns) / 1e9,
                        self.writer.samples,
                        self.sampled_ticks,
                        self.errors,
                    )
        except FlamekitError as exc:
            reason, error = "error", str(exc)
        finally:
            if pauser is not None:
                if pauser.paused:
                    pauser.resume()
                pauser.close()
            self.states.close()
        end_now = time.monotonic_ns()
        child_status = self._child_status(pauser, reason)
        if reason == "interrupted" and self._stopped_by is not None:
            error = signal.Signals(self._stopped_by).name  # which signal, for the end record
        try:
            self.writer.close(
                reason,
                error=error,
                errors=self.errors,
                end_ns=end_now,
                cut_pauses=self.bound.hits if self.bound is not None else 0,
            )
        except OSError as exc:
            raise TargetError(f"cannot finish the trace: {exc.strerror or exc}") from None
        return RecordResult(
            reason,
            self.writer.samples,
            self.errors,
            self.ticks,
            schedule.missed,
            (end_now - self.start_ns) / 1e9,
            child_status,
            error,
            self.sampled_ticks,
        )

    def _tick(self, pauser: Pauser | None) -> str | None:
        """Take one sample of every thread; returns an end reason when the target is gone."""
        running: dict[int, bool | None] = {}
        if self._exec_deadline is not None:
            # No sample until the new program is open. Each try takes longer than a period
            # at high rates, so the loop never waits between ticks, and a stop the target
            # makes meanwhile (our interrupt reaching the exec'ing thread) would hold it,
            # unserviced, for the whole EXEC_WAIT_S: service it here.
            if pauser is not None:
                ended = self._on_events(pauser.service(0))
                if ended:
                    return ended
            return self._reopen_after_exec()
        if pauser is not None:
            # Before pausing: a thread stopped by ptrace always looks asleep, and one just
            # resumed looks runnable, so this is the only moment /proc tells the truth.
            states = self.states
            running = {tid: states.running(tid) for tid in pauser.threads}
            # Our last pause took every blocked thread out of its system call; until it
            # has been on a CPU again to restart the call it shows as runnable ('R'),
            # for a whole tick or more when the CPUs are busy. Such a thread, blocked
            # last time and 'R' now, is checked once stopped: still in a system call,
            # it never left it. Only one seen stopped in its own code (not in a call)
            # counts as woken: one that did not reach its stop at all ("running" in
            # /proc/TID/syscall, the pause incomplete) is most often still waiting for
            # a CPU to restart its call, under load for several ticks, and stays blocked.
            woken = [tid for tid in self._blocked if running.get(tid)]
            result = pauser.pause()
            for tid in woken:
                if states.in_syscall(tid) is not False:
                    running[tid] = False
            self._blocked = [tid for tid, on_cpu in running.items() if on_cpu is False]
            ended = self._on_events(result.events)
            if ended or self._exec_deadline is not None:
                pauser.resume()  # after an exec the old readers would read the new program
                return ended
            if not result.stopped and pauser.exited:
                return "target-exited"
        bound = None
        if pauser is not None and self.bound is not None:
            bound = self.bound
            bound.arm(pauser)
        try:
            t_ns = time.monotonic_ns()
            try:
                stacks = self.walker.walk()
                checked = self._check_codes(stacks)  # the target may die between the two
            except ProcessGoneError:
                if pauser is not None:
                    return "target-exited"
                # Non-blocking: a read caught mid-exec fails as if the process were gone
                # (1 run in 10 of the exec test ended there); see whether it is.
                self.errors += 1
                return self._exec_or_exit()
        finally:
            if bound is not None and bound.disarm():
                self.walker.consistent = True  # the next walk reads a stopped target again
            if pauser is not None:
                pauser.resume()
        self.ticks += 1
        self._write_samples(t_ns, stacks, checked, running)
        return None

    def _let_go(self) -> None:
        """The pause bound let the target go mid-walk: what the walk reads from here on
        may be torn, as in non-blocking mode (re-read a failed chain, trust no caller's
        frame found by the fallback for a stopped target)."""
        self.walker.consistent = False

    def _check_codes(
        self, stacks: list[ThreadStack], remembered: bool = True
    ) -> list[list[int] | int | None]:
        """Per stack, its code refs, or its stack id if it was seen before (see _memo);
        None for a stack that is not recorded but counted as a sampling error: one that
        could not be read whole (a cyclic chain from a torn read among them), or one cut
        at the walker's depth cap (not a stack the program has, only its top)."""
        codes = self.codes
        walker = self.walker
        memo = self._memo if remembered else {}
        out: list[list[int] | int | None] = []
        check = []  # per stack checked: the code addresses to check
        for st in stacks:
            if st.error is not None or st.truncated:
                out.append(None)
            elif not st.frames:
                out.append([])
            else:
                seen = memo.get(st.frames)
                if seen is None:
                    check.append(tuple(map(_code, st.frames)))
                    out.append(None)
                else:
                    check.append(seen[1])
                    out.append(seen[0])
        if not check:
            return out
        try:
            # The headers the walker read along are those of the codes checked last time:
            # after a first try this sample, they no longer are.
            refs = codes.refs_many(check, walker.extra_data if remembered else None)
        except ReadError:
            return [None] * len(stacks)
        finally:
            # Next time the walker reads these headers along with the stacks: one
            # system call a sample instead of two.
            walker.extra = codes.last_ranges
        if codes.reused != self._memo_reused:
            # A code address now holds another code: the ids remembered may name the old
            # one's ref, this sample's too. Rare: check again, remembering nothing. Once:
            # that check's refs are all fresh, and a target rewriting its own code
            # objects could make each check find another change.
            self._memo.clear()
            self._memo_reused = codes.reused
            if remembered:
                return self._check_codes(stacks, remembered=False)
        j = 0
        for n, st in enumerate(stacks):
            if st.error is None and not st.truncated and st.frames:
                got = refs[j]
                j += 1
                if got is None:
                    out[n] = None  # a code it names is unreadable now
                elif out[n] is None:
                    out[n] = got
        return out

    def _write_samples(
        self,
        t_ns: int,
        stacks: list[ThreadStack],
        refs: list[list[int] | int | None],
        running: dict[int, bool | None],
    ) -> None:
        w = self.writer
        gil_only = self.options.gil_only
        pausing = self.options.pausing
        new = False
        wrote = False
        live: set[int] = set()  # the thread refs sampled this tick
        elsewhere = self._running_elsewhere(stacks) if self._gil_names_thread_state else None
        for st, code_refs in zip(stacks, refs):
            if code_refs is None:
                self.errors += 1
                continue
            if gil_only and not st.holds_gil:
                continue
            if not st.frames and self._not_started(st, stacks):
                continue
            key = (st.tstate, st.thread_id, st.native_tid)
            if st.native_tid is None:  # tid unknown this time: the thread we know there
                key = self._live_keys.get(key[:2], key)
            ref = self.threads.get(key)
            if ref is None:
                ref = self._new_thread(key, st, t_ns)
                new = True
            live.add(ref)
            if type(code_refs) is int:
                sid = code_refs
            else:
                sid = w.stack_id(tuple(zip(code_refs, map(_offset, st.frames))))
                if code_refs:
                    memo = self._memo
                    if len(memo) >= MEMO_STACKS:
                        memo.clear()
                    memo[st.frames] = (sid, tuple(dict.fromkeys(map(_code, st.frames))))
            state = None
            if st.native_tid:
                state = (
                    running[st.native_tid]
                    if st.native_tid in running
                    else (None if pausing else self.states.running(st.native_tid))
                )
            idle = (not state) if state is not None else self._looks_idle(st)
            if elsewhere and st.native_tid in elsewhere and not st.holds_gil:
                idle = True
            w.sample(t_ns, ref, sid, gil=st.holds_gil, idle=idle)
            wrote = True
        if wrote:
            self.sampled_ticks += 1
        if new or self.unnamed:
            self._name_threads(t_ns, force=new, live=live)

    @staticmethod
    def _running_elsewhere(stacks: list[ThreadStack]) -> set[int] | None:
        """Kernel tids whose OS thread runs one of several thread states, the one holding
        its interpreter's GIL (sub-interpreters run on the calling thread: its own
        interpreter's thread state waits inside the call, e.g. _interpreters.exec).
        Where the GIL source names the thread state, not only the thread
        (Layout.gil_names_thread_state: all but builds whose GIL words are unknown).

        The others share its tid, so /proc says they run too: sampled as running, the
        waiting caller took as much CPU as the sub-interpreter's code (42% self time for
        a `<module>` that only waited, the thread's CPU counted twice). They are idle."""
        if len(stacks) < 2:
            return None
        tids = [s.native_tid for s in stacks if s.native_tid]
        if len(set(tids)) == len(tids):
            return None
        shared = {t for t in tids if tids.count(t) > 1}
        return {s.native_tid for s in stacks if s.holds_gil and s.native_tid in shared}

    @staticmethod
    def _not_started(st: ThreadStack, stacks: list[ThreadStack]) -> bool:
        """A thread state made for a thread that has not started yet: not a thread.

        Until the new thread binds it, the state carries no ident (3.12+) or its
        creator's ident and tid (3.11 and older). Sampled, it looked like an extra,
        empty main thread: a third of all samples of a target churning threads. The new
        thread sets its ident, then its tid: caught between the two, the state has an
        ident of its own but still its creator's tid (3.11 and older) or tid 0 (3.12+,
        recorded as a thread of tid 0).
        """
        if st.thread_id == 0 or sum(s.thread_id == st.thread_id for s in stacks) > 1:
            return True
        tid = st.native_tid
        if tid == 0:  # 3.12+: caught binding (a thread of tid 0 in half the wave runs)
            return True
        return tid is not None and sum(s.native_tid == tid for s in stacks) > 1

    def _new_thread(self, key: tuple[int, int, int | None], st: ThreadStack, t_ns: int) -> int:
        ref = self._next_thread_ref
        self._next_thread_ref += 1
        old = self._live_keys.get(key[:2])
        self._live_keys[key[:2]] = key
        if old is not None:  # that thread ended: a new one took its tstate and pthread_t
            old_ref = self.threads.pop(old)
            self.thread_tids.pop(old_ref, None)
            self.thread_meta.pop(old_ref, None)
            self.unnamed.discard(old_ref)
        self.threads[key] = ref
        self.thread_tids[ref] = st.native_tid
        self.thread_meta[ref] = (st.native_tid, st.thread_id, t_ns - self.start_ns)
        self.writer.write(
            R.Thread(ref, self.pid, st.native_tid, st.thread_id, None, t_ns - self.start_ns)
        )
        self.unnamed.add(ref)
        return ref

    def _name_threads(self, t_ns: int, force: bool, live: set[int]) -> None:
        """Look up names of threads not yet named: at once for new threads, then with
        back-off (a name can be set after the thread started), never on every sample.

        Only threads sampled this tick are looked up: names are found by ident, and a
        thread that ended may have left its ident to a new one (glibc reuses a dead
        thread's pthread_t at once). A thread that ran before the threading module
        listed it, and ended before the next try, was named after its successor (1-4
        of 40 short threads started in waves): it now stays unnamed."""
        if not force and t_ns < self._next_name_try:
            return
        unnamed = self.unnamed
        if len(unnamed) > 4 * len(live) + 256:
            unnamed.intersection_update(live)  # threads that ended unnamed
        ids = {self.thread_meta[r][1]: r for r in live if r in unnamed}
        found = self.names.lookup(list(ids), self.walker.interpreters)
        for tid, name in found.items():
            ref = ids.get(tid)
            if ref is None or not name:
                continue
            native, py_id, first = self.thread_meta[ref]
            self.writer.write(R.Thread(ref, self.pid, native, py_id, name, first))
            self.unnamed.discard(ref)
        self._name_backoff = NAME_RETRY_S if force else min(self._name_backoff * 2, 2.0)
        self._next_name_try = t_ns + int(self._name_backoff * 1e9)

    def _looks_idle(self, st: ThreadStack) -> bool:
        return idle_by_frame(st.frames, self.codes.info)

    # -- between ticks ----------------------------------------------------------------

    def _on_events(self, ev: Events) -> str | None:
        for tid in ev.exited_threads:
            self.states.forget(tid)  # its /proc stat file stays open otherwise
        if ev.exited:
            return "target-exited"
        if ev.execed:
            self._exec_deadline = time.monotonic() + EXEC_WAIT_S
        return None

    def _reopen_after_exec(self) -> str | None:
        """The target replaced its program: follow it if it is (or becomes) CPython.

        At the exec stop the new program has not run: its loader has not yet mapped
        libpython, so a Python about to start cannot be opened. Each tick tries again,
        the target running meanwhile, until EXEC_WAIT_S has passed.
        """
        try:
            target = open_target(self.pid)
        except TargetError:
            assert self._exec_deadline is not None
            if time.monotonic() < self._exec_deadline and self.target.memory.alive():
                return None
            return "target-exited"
        self._exec_deadline = None
        self.target.close()
        self._open_readers(target)
        return None

    def _wait_nonblocking(self, wait_s: float) -> str | None:
        # Whether the target is still there, at most every _EXIT_CHECK_S: a walk of a
        # process that is gone fails and ends the recording anyway, so this only bounds
        # how long the end of a target between ticks (a low rate) goes unnoticed.
        now = time.monotonic()
        if now >= self._next_exit_check:
            self._next_exit_check = now + _EXIT_CHECK_S
            ended = self._exec_or_exit()
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

    def _exec_or_exit(self) -> str | None:
        """Non-blocking mode: "target-exited" if the target is gone; after an exec, which
        no ptrace event tells us of here, follow it as pausing mode does (it lost every
        sample after the exec: 160 samples against 361)."""
        if self.launched is not None and self.launched.poll() is not None:
            return "target-exited"
        if not self.target.memory.alive():  # the process, not a new one of its pid
            return "target-exited"
        ident = launcher.exec_identity(self.pid)
        if ident is None:
            return "target-exited"
        if ident != self._exec_ident:
            self._exec_ident = ident
            if self._exec_deadline is None:
                self._exec_deadline = time.monotonic() + EXEC_WAIT_S
        return None

    def _interrupted(self) -> bool:
        """Ctrl-C or SIGTERM, polled once a tick (both are blocked while recording).

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

    def _suspended(self, pauser: Pauser | None) -> Pauser | None:
        """Ctrl-Z (SIGTSTP): release the target, stop as the terminal asked, and take the
        target again once continued. A stopped tracer holds every signal its tracee gets
        (each one stops the receiving thread until the tracer passes it on): a target
        with a 10 ms SIGALRM timer was frozen for 2 s while the recorder sat stopped.
        Only pausing mode traces the target; without it SIGTSTP is left to stop us."""
        self._suspend = False
        if pauser is not None:
            pauser.close()
        os.kill(os.getpid(), signal.SIGSTOP)  # SIGTSTP's own action, which we hold back
        if pauser is None:
            return None
        try:
            return Pauser(self.pid, self.target.memory.process)
        except TargetError:
            gone = self.launched.poll() is not None if self.launched else False
            if gone or not os.path.exists(f"/proc/{self.pid}"):
                return None  # it ended while we were stopped
            raise

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

    def _child_status(self, pauser: Pauser | None, reason: str) -> int | None:
        """A launched child's exit code once it has exited; None while it runs on.

        A recording cut short (duration, Ctrl-C) waits only briefly: after a Ctrl-C from
        the terminal the child is usually exiting too; one still running when the
        recording ends is stopped by the record command.
        """
        if self.launched is None:
            return None
        status = pauser.exit_status if pauser is not None else None
        if status is not None:
            return os.waitstatus_to_exitcode(status)
        try:
            return self.launched.wait(timeout=2.0 if reason != "duration" else 0.05)
        except subprocess.TimeoutExpired:
            return None

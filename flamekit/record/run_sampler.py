"""Sampling one run: one CPython program in one process, from its first sample to its end
or its exec.

Per tick: note which threads are on CPU (from /proc, before pausing: a paused thread
always looks asleep), pause the process (unless nonblocking), walk all stacks, check the
code objects they name, resume, then write one sample per thread. What happens to the
process between ticks (signals, exits, execs, new processes) is the recorder's
(:mod:`flamekit.record.sampler`); this module knows one program's readers and threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from time import monotonic_ns

from flamekit.record.code_reader import CodeInfo, CodeReader
from flamekit.record.code_refs import CodeRefs
from flamekit.record.pause_bound import PauseBound
from flamekit.record.proc.idle import ThreadStates, idle_by_frame
from flamekit.record.proc.memory import ReadError
from flamekit.record.proc.pause import Events, Pauser
from flamekit.record.proc.restart import about_to_restart
from flamekit.record.proc.unwind import NativeUnwinder
from flamekit.record.target import PythonTarget
from flamekit.record.threadnames import ThreadNames
from flamekit.record.walk import StackWalker, ThreadStack
from flamekit.trace import records as R
from flamekit.trace.writer import TraceWriter

_code, _offset = itemgetter(0), itemgetter(1)  # of a walker frame
#: Most stacks remembered with their ids (RunSampler._memo); emptied when full.
MEMO_STACKS = 4096
#: First retry of a thread name not found, doubling to 2 s: a thread runs briefly before
#: threading lists it, and a short one may be gone at a later first retry (at 50 ms, 4 of
#: 40 threads of 50 ms stayed unnamed).
NAME_RETRY_S = 0.005
#: The retry back-off, at least, while the program has not imported threading.
WITHOUT_THREADING_S = 0.5


@dataclass
class Shared:
    """What every run of one recording shares: where samples go, the time origin, the
    options, the trace refs (unique in the trace, whatever the process or program), and
    the pause bound's timer."""

    writer: TraceWriter
    start_ns: int
    gil_only: bool
    pausing: bool
    new_code_ref: Callable[[], int]
    new_thread_ref: Callable[[], int]
    bound: PauseBound | None = None
    #: record --native: unwind each paused thread's native stack too
    native: bool = False


class RunSampler:
    """Samples one CPython program in one process (see the module doc)."""

    def __init__(self, target: PythonTarget, shared: Shared) -> None:
        self.target = target
        self.pid = target.pid
        self.shared = shared
        self.walker = StackWalker(
            target, consistent=shared.pausing, eval_ends=shared.native and shared.pausing
        )
        self._gil_names_thread_state = target.layout.gil_names_thread_state
        self.code_reader = CodeReader(target)
        self.codes = CodeRefs(self.code_reader, self._write_code, shared.new_code_ref)
        self.names = ThreadNames(target, self.code_reader)
        self.states = ThreadStates(self.pid)
        #: A walked stack (its frames as the walker gives them) -> (its stack id, its
        #: distinct code addresses). A CPU-bound program comes back to the same few
        #: stacks sample after sample; for one seen before, only its codes are checked
        #: (the reuse guard) and the id is taken as it was. Emptied whenever a code
        #: address turns out to hold another code (ids name refs).
        self._memo: dict[tuple[tuple[int, int], ...], tuple[int, tuple[int, ...]]] = {}
        self._memo_reused = 0
        #: (tstate, thread id, native tid) -> thread ref. The native tid is part of the key:
        #: a new thread often reuses an ended one's tstate and pthread_t, and must not be
        #: merged into it (wrong tid and name). Only the current thread per (tstate,
        #: thread id) is kept, so a target churning threads does not grow these maps.
        self.threads: dict[tuple[int, int, int | None], int] = {}
        self._live_keys: dict[tuple[int, int], tuple[int, int, int | None]] = {}
        self.unnamed: set[int] = set()  # thread refs whose name is not known yet
        #: unnamed refs written with a name that may be cut short, and that name
        self._provisional: dict[int, str] = {}
        #: thread ref -> (native tid, python thread id, first seen ns since origin)
        self.thread_meta: dict[int, tuple[int | None, int, int]] = {}
        self._next_name_try = 0
        self._name_backoff = NAME_RETRY_S
        self._blocked: list[int] = []  #: native tids found blocked at the last tick
        self._running: dict[int, bool | None] = {}  #: what prepare() read this tick
        self.errors = 0  #: sampling errors
        self.wrote = False  #: the last tick wrote a sample
        #: --native: the unwinder of this program's native stacks (pausing mode only)
        self.unwinder = (
            NativeUnwinder(self.pid, target.memory) if shared.native and shared.pausing else None
        )

    def close(self) -> None:
        self.states.close()
        self.target.close()

    def _write_code(self, ref: int, info: CodeInfo) -> None:
        self.shared.writer.write(info.record(ref, self.pid))

    # -- one tick ---------------------------------------------------------------------

    def prepare(self, pauser: Pauser) -> None:
        """Read which threads are on CPU, then ask them to stop (:meth:`tick` waits).

        Before pausing: a thread stopped by ptrace always looks asleep, and one just
        resumed looks runnable, so this is the only moment /proc tells the truth. A tree's
        processes are all asked before any is waited for (see Pauser.request).

        A thread still in the tracing stop of a pause it reached late (None: unknown)
        keeps what the last tick saw of it: a spinner stays running, a sleeper asleep
        (read as asleep, a spinning GIL holder was sampled idle; judged by its frames, a
        thread in time.sleep was sampled busy)."""
        states = self.states
        last = self._running
        now = {tid: states.running(tid) for tid in pauser.threads}
        for tid, on_cpu in now.items():
            if on_cpu is None and last.get(tid) is not None:
                now[tid] = last[tid]
        self._running = now
        pauser.request()

    def tick(self, pauser: Pauser | None) -> Events | None:
        """Take one sample of every thread (after :meth:`prepare`, with a pauser). Returns
        the events of the pause when the process exited or exec'd instead (nothing was
        sampled: the caller acts)."""
        self.wrote = False
        running: dict[int, bool | None] = {}
        if pauser is not None:
            states = self.states
            running = self._running
            # Our last pause took every blocked thread out of its system call; until it
            # has been on a CPU again to restart the call it shows as runnable ('R'),
            # for a whole tick or more when the CPUs are busy. Such a thread, blocked
            # last time and 'R' now, is checked once stopped: still in a system call,
            # it never left it. Only one seen stopped in its own code (not in a call)
            # counts as woken: one that did not reach its stop at all ("running" in
            # /proc/TID/syscall, the pause incomplete) is most often still waiting for
            # a CPU to restart its call, under load for several ticks, and stays blocked;
            # so does one stopped on the very instruction that restarts the call.
            woken = [tid for tid in self._blocked if running.get(tid)]
            result = pauser.pause()
            for tid in woken:
                if states.in_syscall(tid) is not False or about_to_restart(tid, self.target.memory):
                    running[tid] = False
            self._blocked = [tid for tid, on_cpu in running.items() if on_cpu is False]
            events = result.events
            for tid in events.exited_threads:
                states.forget(tid)  # its /proc stat file stays open otherwise
            if events.exited or events.execed or (not result.stopped and pauser.exited):
                pauser.resume()  # after an exec the old readers would read the new program
                events.exited = events.exited or pauser.exited
                return events
        bound = None
        if pauser is not None and self.shared.bound is not None:
            bound = self.shared.bound
            bound.arm(pauser, self._let_go)
        natives = None
        try:
            t_ns = monotonic_ns()
            stacks = self.walker.walk()
            if self.unwinder is not None and pauser is not None:
                natives = self._unwind(stacks)
                if not self.walker.consistent:
                    # the pause bound let the target go during the walk or the unwind: a
                    # stack read from a running thread may mix two moments; none is kept
                    natives = {}
            checked = self._check_codes(stacks)  # the target may die between the two
        finally:
            if bound is not None and bound.disarm():
                self.walker.consistent = True  # the next walk reads a stopped target again
            if pauser is not None:
                pauser.resume()
        self._write_samples(t_ns, stacks, checked, running, natives)
        return None

    def _unwind(self, stacks: list[ThreadStack]) -> dict[int, int]:
        """While the threads are held: each one's native stack, interned (native tid ->
        native stack id), and the objects that appeared first recorded."""
        unwinder = self.unwinder
        assert unwinder is not None
        w = self.shared.writer
        out: dict[int, int] = {}
        for st in stacks:
            tid = st.native_tid
            if not tid or tid in out:
                continue
            got = unwinder.unwind(tid)
            if got is None:
                continue  # not held now (a thread let go by the pause bound)
            if unwinder.appeared:
                first = max(monotonic_ns() - self.shared.start_ns, 0)
                for obj in unwinder.appeared:
                    w.write(R.NativeObject(self.pid, obj.path, obj.build_id, obj.bias,
                                           obj.ranges, first))  # fmt: skip
                unwinder.appeared.clear()
            out[tid] = w.native_stack_id(*got, st.eval_ends)
        return out

    def forget_threads(self, tids: list[int]) -> None:
        for tid in tids:
            self.states.forget(tid)

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
        natives: dict[int, int] | None = None,
    ) -> None:
        shared = self.shared
        w = shared.writer
        gil_only = shared.gil_only
        pausing = shared.pausing
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
            if natives is None:
                w.sample(t_ns, ref, sid, gil=st.holds_gil, idle=idle)
            else:
                w.native_sample(t_ns, ref, sid, natives.get(st.native_tid, 0), st.holds_gil, idle)
            wrote = True
        self.wrote = wrote
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
        ref = self.shared.new_thread_ref()
        old = self._live_keys.get(key[:2])
        self._live_keys[key[:2]] = key
        if old is not None:  # that thread ended: a new one took its tstate and pthread_t
            old_ref = self.threads.pop(old)
            self.thread_meta.pop(old_ref, None)
            self.unnamed.discard(old_ref)
            self._provisional.pop(old_ref, None)
        first = t_ns - self.shared.start_ns
        self.threads[key] = ref
        self.thread_meta[ref] = (st.native_tid, st.thread_id, first)
        ns_tid = self.target.tids.ns_tid(st.native_tid)  # a container's own id, if other
        self.shared.writer.write(
            R.Thread(ref, self.pid, st.native_tid, st.thread_id, None, first, ns_tid)
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
            for ref in self._provisional.keys() - unnamed:
                del self._provisional[ref]
        ids = {self.thread_meta[r][1]: r for r in live if r in unnamed}
        found = self.names.lookup(list(ids), self.walker.interpreters)
        for tid, name in found.items():
            ref = ids.get(tid)
            if ref is None or not name:
                continue
            if tid in self.names.provisional:
                # comm's 15 bytes, perhaps cut short: written, and memory asked again
                if self._provisional.get(ref) == name:
                    continue
                self._provisional[ref] = name
            else:
                self.unnamed.discard(ref)
                self._provisional.pop(ref, None)
            native, py_id, first = self.thread_meta[ref]
            ns_tid = self.target.tids.ns_tid(native)
            self.shared.writer.write(R.Thread(ref, self.pid, native, py_id, name, first, ns_tid))
        self._name_backoff = NAME_RETRY_S if force else min(self._name_backoff * 2, 2.0)
        if self.names.without_threading:
            # Nothing to find until the program imports threading: a lookup there scans
            # sys.modules (18 ms), and retried at the short back-off's pace it cost a
            # tree's recorder several of those a second for each process in its first one.
            self._name_backoff = max(self._name_backoff, WITHOUT_THREADING_S)
        self._next_name_try = t_ns + int(self._name_backoff * 1e9)

    def _looks_idle(self, st: ThreadStack) -> bool:
        return idle_by_frame(st.frames, self.codes.info)

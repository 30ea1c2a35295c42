"""Small recorder parts: the drift-free schedule, thread run states, output names."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hypothesis import given
from hypothesis import strategies as st

from flamekit.record.proc.idle import ThreadStates
from flamekit.record.proc.launcher import default_output, short_name
from flamekit.record.proc.pause import Pauser
from flamekit.record.schedule import Schedule


@given(st.lists(st.integers(0, 5_000_000), min_size=1, max_size=200))
def test_schedule_never_drifts(lateness):
    """However late each sample is, tick k stays due at start + k * period, and the next
    due time is never a whole period in the past."""
    s = Schedule(1000.0, start_ns=0)
    due = s.due()
    for late in lateness:
        now = due + late
        due = s.advance(now)
        assert due == s.k * s.period_ns
        assert due > now - s.period_ns
    assert s.missed == s.k - len(lateness)


def test_schedule_counts_missed_ticks():
    s = Schedule(100.0, start_ns=0)  # 10 ms period
    # 35 ms: ticks at 10 and 20 ms are over a period late and skipped; 30 ms still runs
    assert s.advance(35_000_000) == 30_000_000
    assert s.missed == 2
    assert s.advance(36_000_000) == 40_000_000
    assert s.missed == 2


def test_thread_states_tell_running_from_sleeping():
    code = (
        "import threading, time\n"
        "def spin():\n    while True: pass\n"
        "threading.Thread(target=spin, daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        states = ThreadStates(p.pid)
        tids = sorted(states.tids())
        assert len(tids) == 2 and tids[0] == p.pid
        runs = {t: 0 for t in tids}
        for _ in range(50):
            for t in tids:
                runs[t] += bool(states.running(t))
            time.sleep(0.002)
        assert runs[p.pid] <= 5  # the main thread sleeps
        assert runs[tids[1]] >= 40  # the spinner is on CPU (or runnable) nearly always
        assert states.running(999_999_999) is None
    finally:
        p.kill()
        p.wait()
    assert states.running(tids[1]) is None  # gone
    states.close()


def test_a_thread_in_a_tracing_stop_is_neither_running_nor_asleep():
    """A thread our pause reached late sits in a tracing stop ('t') until we serve it: its
    own state is unknown there, not "asleep" (a spinning GIL holder was sampled idle)."""
    code = "import time\nprint('ready', flush=True)\nwhile True: pass\n"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        states = ThreadStates(p.pid)
        with Pauser(p.pid) as pauser:
            result = pauser.pause(timeout=5)
            assert result.stopped == (p.pid,), result
            assert states.running(p.pid) is None
            pauser.resume()
            assert any(states.running(p.pid) for _ in range(200) if not time.sleep(0.001))
        states.close()
    finally:
        p.kill()
        p.wait()


def test_default_output_is_named_after_the_script_and_pid():
    name = short_name(os.getpid())
    out = default_output(os.getpid(), when=0)
    assert out.startswith(f"flamekit-{name}-{os.getpid()}-") and out.endswith(".fkt")
    assert "/" not in out


def test_a_thread_found_in_a_tracing_stop_keeps_its_last_state():
    """prepare() reads /proc before pausing; a thread still held in the stop of a pause it
    reached late reads as unknown, and keeps what the last tick saw of it."""
    from flamekit.record.run_sampler import RunSampler

    class States:
        def __init__(self) -> None:
            self.now: dict[int, bool | None] = {}

        def running(self, tid: int) -> bool | None:
            return self.now[tid]

    class Pauser:
        threads = (1, 2, 3)
        asked = 0

        def request(self) -> None:
            self.asked += 1

    run = object.__new__(RunSampler)
    run.states, run._running = States(), {}
    pauser = Pauser()
    run.states.now = {1: True, 2: False, 3: None}  # a spinner, a sleeper, one unknown
    run.prepare(pauser)
    assert run._running == {1: True, 2: False, 3: None} and pauser.asked == 1
    run.states.now = {1: None, 2: None, 3: None}  # all three in a tracing stop now
    run.prepare(pauser)
    assert run._running == {1: True, 2: False, 3: None}
    run.states.now = {1: False, 2: True, 3: True}  # read again: what /proc says wins
    run.prepare(pauser)
    assert run._running == {1: False, 2: True, 3: True}


def test_a_name_comm_may_have_cut_is_asked_for_again():
    """3.14's comm fallback gives at most 15 bytes: a thread named from it before memory
    lists it (still in threading._limbo) is written, and asked again until memory gives
    the whole name; the same cut name is not written twice."""
    from types import SimpleNamespace

    from flamekit.record.run_sampler import RunSampler

    class Names:
        without_threading = False

        def __init__(self) -> None:
            self.answers: list[tuple[dict[int, str], set[int]]] = []
            self.provisional: set[int] = set()

        def lookup(self, ids: list[int], interpreters: object) -> dict[int, str]:
            found, self.provisional = self.answers.pop(0)
            return {i: n for i, n in found.items() if i in ids}

    written: list[tuple[int, str | None]] = []
    run = object.__new__(RunSampler)
    run.names = names = Names()
    run.walker = SimpleNamespace(interpreters=[1])
    run.shared = SimpleNamespace(
        writer=SimpleNamespace(write=lambda r: written.append((r.ref, r.name)))
    )
    run.target = SimpleNamespace(tids=SimpleNamespace(ns_tid=lambda tid: None))
    run.pid, run._next_name_try, run._name_backoff = 100, 0, 0.05
    run.thread_meta = {7: (101, 0xA, 0), 8: (102, 0xB, 0)}
    run.unnamed, run._provisional = {7, 8}, {}
    cut = "ожидани"  # "ожидание-lock" cut to 15 bytes, the partial character dropped
    names.answers = [
        ({0xA: cut, 0xB: "short"}, {0xA}),  # comm for both; only the first fills 15 bytes
        ({0xA: cut}, {0xA}),  # the same again: nothing new to write
        ({0xA: "ожидание-lock"}, set()),  # memory has it now
    ]
    for _ in range(3):
        run._name_threads(0, True, {7, 8})
    assert written == [(7, cut), (8, "short"), (7, "ожидание-lock")]
    assert run.unnamed == set() and run._provisional == {}

"""Issue #7: the target misbehaves while ``flamekit record`` runs (the real CLI, real targets).

The target is SIGKILLed, exits, exec()s another program, forks, churns hundreds of
threads a second, lives on signals and job control while held at 1000 Hz. Each time the
recording must go on or end with the right END reason, count its sampling errors rather
than die of them, and leave a complete, readable trace; the target must behave as it
would without flamekit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_reliability_common import (
    PY,
    REL_TARGET,
    TARGETS,
    check_complete,
    finish,
    kill_quietly,
    start_record,
    start_target,
    summary,
    thread_states,
    tracer_pid,
    wait_until,
)

from flamekit.trace import Trace


def samples_of(tr: Trace, function: str) -> int:
    """Samples whose stack holds a frame of a function called ``function``."""
    refs = {r for r, c in tr.codes.items() if c.name == function}
    hit = {sid for sid, frames in tr.stacks.items() if any(c in refs for c, _ in frames)}
    return sum(1 for s in tr.columns.stack if s in hit)


def wait_recording(out: Path, rec: subprocess.Popen, min_bytes: int = 2000) -> None:
    """Until the trace file holds some samples (the recorder flushes every 0.25 s)."""
    ok = wait_until(
        lambda: out.exists() and out.stat().st_size > min_bytes or rec.poll() is not None
    )
    assert ok and rec.poll() is None, f"recorder did not get going: {rec.poll()}"


# -- SIGKILL and normal exit -----------------------------------------------------------


@pytest.mark.parametrize(
    "how, flags",
    [("attach", []), ("attach", ["--nonblocking"]), ("launch", []), ("launch", ["--nonblocking"])],
    ids=["attach", "attach-nonblocking", "launch", "launch-nonblocking"],
)
def test_target_sigkilled(tmp_path: Path, how: str, flags: list[str]):
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    target = rec = None
    try:
        if how == "attach":
            target, pid = start_target("spin", state, 3)
            rec = start_record("-p", pid, "-r", 1000, "-q", "-o", out, *flags)
        else:
            rec = start_record(
                "-r", 1000, "-q", "-o", out, *flags, "--", PY, REL_TARGET, "spin", state, 3
            )
            pid = int(rec.stdout.readline().split()[1])
        wait_recording(out, rec)
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        if target is not None:
            target.wait(timeout=10)  # reaped at once, as a shell would
        code, _, err = finish(rec)
    finally:
        kill_quietly(target, rec)
    assert code == 0, err
    m = summary(err)
    assert m["how"] == "target exited"
    if how == "launch":
        assert "the command exited with status -9" in err
    tr = check_complete(out, "target-exited")
    assert len(tr) > 100
    assert samples_of(tr, "inner") > 0


@pytest.mark.parametrize("how", ["attach", "launch"])
def test_target_exits_normally(tmp_path: Path, how: str):
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    target = rec = None
    try:
        if how == "attach":
            target, pid = start_target("exit", state, 2.0, 3)  # start-up takes ~0.5 s
            rec = start_record("-p", pid, "-r", 1000, "-q", "-o", out)
        else:
            rec = start_record(
                "-r", 1000, "-q", "-o", out, "--", PY, REL_TARGET, "exit", state, 1.0, 3
            )
        code, _, err = finish(rec)
        if target is not None:
            assert target.wait(timeout=10) == 3
    finally:
        kill_quietly(target, rec)
    assert code == 0, err
    assert summary(err)["how"] == "target exited"
    if how == "launch":
        assert "the command exited with status 3" in err
    tr = check_complete(out, "target-exited")
    assert len(tr) > 100 and samples_of(tr, "spin_for") > 0.5 * len(tr)


# -- exec ------------------------------------------------------------------------------


def test_target_execs_a_program_that_is_not_python(tmp_path: Path):
    """The Python program is gone: the recording ends (target-exited), the new program runs
    to its end untouched (its exit status comes back through the recorder)."""
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    rec = start_record(
        "-r", 1000, "-q", "-o", out, "--", PY, REL_TARGET, "exec", state, 0.5,
        "/bin/sh", "-c", "sleep 0.3; exit 5",
    )  # fmt: skip
    try:
        pid = int(rec.stdout.readline().split()[1])
        time.sleep(0.6)
        # After the exec the recorder lets go of it; the shell must not be left stopped.
        assert wait_until(lambda: tracer_pid(pid) == 0 or not thread_states(pid), 5)
        assert not set(thread_states(pid).values()) & {"t", "T"}
        code, _, err = finish(rec)
    finally:
        kill_quietly(rec)
    assert code == 0, err
    assert summary(err)["how"] == "target exited"
    assert "the command exited with status 5" in err  # sleep ran, then exit 5
    tr = check_complete(out, "target-exited")
    assert samples_of(tr, "spin_for") > 50


@pytest.mark.parametrize("mode", [[], ["--nonblocking"]], ids=["pausing", "nonblocking"])
def test_target_execs_python_again_and_recording_follows(tmp_path: Path, mode: list[str]):
    """Both modes follow the exec: non-blocking mode, which gets no ptrace event for it,
    lost every sample after it (160 samples and 0 errors, against 361 paused)."""
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    after = (
        "import time\n"
        "def after_exec():\n"
        "    end = time.monotonic() + 0.8\n"
        "    while time.monotonic() < end:\n"
        "        sum(range(1000))\n"
        "after_exec()\n"
        "raise SystemExit(4)\n"
    )
    rec = start_record(
        "-r", 1000, "-q", *mode, "-o", out, "--", PY, REL_TARGET, "exec", state, 0.5, PY, "-c",
        after,
    )  # fmt: skip
    try:
        code, _, err = finish(rec)
    finally:
        kill_quietly(rec)
    assert code == 0, err
    assert "the command exited with status 4" in err
    tr = check_complete(out, "target-exited")
    before, later = samples_of(tr, "spin_for"), samples_of(tr, "after_exec")
    assert before > 50 and later > 50, (before, later)
    # Every sample of the new program comes after every sample of the old one.
    ref_after = {r for r, c in tr.codes.items() if c.name == "after_exec"}
    ref_before = {r for r, c in tr.codes.items() if c.name == "spin_for"}
    t_after = [
        t
        for t, s in zip(tr.times, tr.columns.stack)
        if ref_after & {c for c, _ in tr.stacks.get(s, ())}
    ]
    t_before = [
        t
        for t, s in zip(tr.times, tr.columns.stack)
        if ref_before & {c for c, _ in tr.stacks.get(s, ())}
    ]
    assert max(t_before) < min(t_after)


# -- fork ------------------------------------------------------------------------------


def test_target_forks(tmp_path: Path):
    """Forked children are not traced (no TracerPid), all exit with the right status, and
    the recording of the parent goes on while they come and go."""
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    rec = start_record("-r", 1000, "-q", "-o", out, "--", PY, REL_TARGET, "fork", state, 1.5, 30)
    try:
        pid = int(rec.stdout.readline().split()[1])
        code, stdout, err = finish(rec)
    finally:
        kill_quietly(rec)
    assert code == 0, err
    report = json.loads(stdout)
    assert report == {"forked": 30, "bad": [], "tracers": [0]}
    tr = check_complete(out, "target-exited")
    assert {t.pid for t in tr.threads.values()} == {pid}
    assert list(tr.processes) == [pid]
    # The parent's recording goes on through the forks: its samples come all along the
    # 1.5 s, never a long hole. (How many depends on the machine: 1,000 Hz asked, a
    # loaded CI-like run reached 200 samples of spin_for.)
    refs = {r for r, c in tr.codes.items() if c.name == "spin_for"}
    hit = {sid for sid, frames in tr.stacks.items() if any(c in refs for c, _ in frames)}
    times = [t for t, s in zip(tr.times, tr.columns.stack) if s in hit]
    assert len(times) >= 50, len(times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 500_000_000 and times[-1] - times[0] > 1_000_000_000, (
        max(gaps),
        times[-1] - times[0],
    )


# -- thread churn ----------------------------------------------------------------------


def test_hundreds_of_short_threads_a_second(tmp_path: Path):
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    rec = start_record(
        "-r", 1000, "-q", "-o", out, "--", PY, REL_TARGET, "threads", state, 2.0, 800
    )
    try:
        rec.stdout.readline()
        code, stdout, err = finish(rec, timeout=60)
    finally:
        kill_quietly(rec)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["ok"], report
    # (a count, not a rate: a loaded machine once started only 616 in the 2 s)
    assert report["threads"] >= 800, "the target should have started 800 threads"
    m = summary(err)
    tr = check_complete(out, "target-exited")
    assert int(m["errors"].replace(",", "")) == tr.end.errors  # counted, not fatal
    assert int(m["samples"].replace(",", "")) == len(tr)
    # Each short thread seen is a thread of its own. They reuse each other's tstate and
    # pthread_t: a recorder keyed on those alone merged thousands of threads into a dozen
    # refs, each ref's samples spread over the whole run under its first thread's tid. So
    # every sample of a ref lies within the life of the thread its tid names (the target
    # logged each one's, on the same clock as the trace). How many short threads a sample
    # catches depends on the machine (CI's two cores: 24 to 95 of 800, this image's many
    # cores several hundred); that it catches some does not.
    assert samples_of(tr, "work") > 0
    lives: dict[int, list[tuple[int, int]]] = {tr.header.pid: [(0, 1 << 62)]}
    for line in Path(f"{state}.lives").read_text().splitlines():
        tid, born, gone = map(int, line.split())
        lives.setdefault(tid, []).append((born, gone))
    # a sample's time is its tick's start: the read that saw the thread comes later in
    # the tick, and a tick on a loaded machine can last a while
    slack = 50_000_000
    origin, cols = tr.header.start_monotonic_ns, tr.columns
    stray = []
    for i in range(len(cols)):
        th = tr.threads[cols.thread[i]]
        at = origin + cols.time[i]
        spans = lives.get(th.native_tid, ())
        if not any(born - slack <= at <= gone + slack for born, gone in spans):
            stray.append((th.native_tid, th.name, at - origin))
    assert not stray, (len(stray), stray[:5])
    tids = {t.native_tid for t in tr.threads.values()}
    assert len(tids) >= 0.95 * len(tr.threads), (len(tids), len(tr.threads))
    # Thread states not yet bound to their thread (3.11 and older: they carry the
    # creator's ident and tid; 3.12+: none) are not sampled as extra threads: one thread
    # of the main thread's kernel tid and ident (no new thread can get those while it
    # lives) and none without an ident. (A count of empty samples said the same, loosely:
    # a short thread waiting for the GIL before its first frame is rightly sampled empty,
    # and on a loaded machine such samples passed any fixed share.)
    pid = tr.header.pid
    main_like = [t for t in tr.threads.values() if t.native_tid == pid]
    assert len(main_like) == 1, main_like
    assert not [t for t in tr.threads.values() if t.py_thread_id == main_like[0].py_thread_id][1:]
    assert not [t for t in tr.threads.values() if not t.py_thread_id]
    assert tr.end.errors < 0.1 * len(tr), (tr.end.errors, len(tr))


# -- signals and job control while held at 1000 Hz ------------------------------------


def test_signals_and_job_control_while_recorded(tmp_path: Path):
    """SIGALRM interval timer, SIGCHLD-reaped children, SIGUSR1 and SIGSTOP/SIGCONT from
    outside, the target held by ``flamekit record -r 1000``: every handler runs as often
    as it should, and job control behaves (stopped: no progress; continued: progress)."""
    state, out = tmp_path / "state", tmp_path / "t.fkt"
    target = subprocess.Popen(
        [PY, str(TARGETS / "pause_signals.py"), str(state), "4.0", "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    rec = None
    try:
        assert target.stdout.readline().strip() == "ready"
        rec = start_record("-p", target.pid, "-r", 1000, "-q", "-o", out)
        assert wait_until(lambda: tracer_pid(target.pid) != 0 or rec.poll() is not None)
        assert rec.poll() is None, rec.communicate()

        def field(i: int) -> int:
            return int(state.read_text().split()[i]) if state.read_text().strip() else -1

        for i in range(20):
            os.kill(target.pid, signal.SIGUSR1)
            assert wait_until(lambda i=i: field(2) == i + 1, 10), f"SIGUSR1 #{i} lost"

        os.kill(target.pid, signal.SIGSTOP)
        stop_started = time.monotonic()
        assert wait_until(lambda: set(thread_states(target.pid).values()) <= {"t", "T"}, 10)
        time.sleep(0.05)
        frozen = field(0)
        time.sleep(0.4)
        assert field(0) == frozen, "target ran while job-stopped"
        assert rec.poll() is None, "recorder gave up on a stopped target"
        os.kill(target.pid, signal.SIGCONT)
        stopped_for = time.monotonic() - stop_started
        assert wait_until(lambda: field(0) > frozen + 10, 10), "SIGCONT ignored"

        counts = json.loads(target.stdout.readline())
        assert target.wait(timeout=20) == 0
        code, _, err = finish(rec)
    finally:
        kill_quietly(target, rec)
    assert code == 0, err
    assert counts["usr1"] == 20
    assert counts["forked"] == 30 and counts["reaped"] == 30, counts
    # The 10 ms timer ran all along (signals coalesce while the target is stopped).
    expected = (counts["elapsed"] - stopped_for) / 0.01
    assert counts["alarms"] >= 0.7 * expected, (counts, expected)
    assert counts["alarms"] <= counts["elapsed"] / 0.01 + 2
    tr = check_complete(out, "target-exited")
    assert len(tr) > 500

"""flamekit.record.proc.pause against real processes: no mocks, every target a real program.

The targets live in tests/targets/pause_*.py. The tests run the Pauser in the pytest
process itself (so it is also the targets' parent: it reaps their exit and reports the
status), except where a second, killable recorder is needed (pause_holder.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flamekit.errors import TargetError
from flamekit.record.proc.pause import Events, Pauser

TARGETS = Path(__file__).resolve().parent / "targets"
ROOT = Path(__file__).resolve().parent.parent


def spawn(script: str, *args: object, **kw: object) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(TARGETS / script), *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith(("ready", "held")), line
    return proc


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        if p.stdout:
            p.stdout.close()


def states(pid: int) -> dict[int, str]:
    """State letter of every thread, from /proc/PID/task/TID/stat."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{name}/stat") as f:
                out[int(name)] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return out


def counter(path: Path, index: int = 0) -> int:
    """A number the target rewrites in place (a read may race a write: retry)."""
    for _ in range(100):
        try:
            return int(path.read_text().split()[index])
        except (ValueError, IndexError):
            time.sleep(0.001)
    raise AssertionError(f"unreadable counter file {path}")


def drive(pauser: Pauser, seconds: float, hz: float = 1000.0, totals: dict | None = None) -> dict:
    """Sample the way the sampler will: pause, (read), resume, service until the next tick.

    Adds what happened to ``totals`` (a new dict if not given) and returns it.
    """
    period = 1.0 / hz
    if totals is None:
        totals = {}
    for key, empty in (("rounds", 0), ("incomplete", 0), ("signals", []), ("new", 0)):
        totals.setdefault(key, empty)
    totals.setdefault("exited", False)
    totals.setdefault("exit_status", None)
    end = time.monotonic() + seconds
    next_tick = time.monotonic()

    def add(ev: Events) -> None:
        totals["signals"] += [s for _, s in ev.signals]
        totals["new"] += len(ev.new_threads)
        if ev.exited:
            totals["exited"] = True
            totals["exit_status"] = ev.exit_status

    while time.monotonic() < end and not totals["exited"]:
        result = pauser.pause()
        pauser.resume()
        add(result.events)
        totals["rounds"] += 1
        totals["incomplete"] += not result.complete and not result.events.exited
        next_tick += period
        add(pauser.service(max(0.0, next_tick - time.monotonic())))
    return totals


def wait_for(cond, pauser: Pauser, timeout: float = 10.0, totals: dict | None = None) -> bool:
    """Keep sampling until cond() is true (generous timeout: CI machines can be loaded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        drive(pauser, 0.01, totals=totals)
    return cond()


def wait_until(cond, timeout: float = 10.0) -> bool:
    """Poll cond() without a Pauser (after close, or for another recorder's target)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


# --------------------------------------------------------------------------- pausing


def test_pause_stops_every_thread_and_resume_lets_it_progress(procs, tmp_path):
    path = tmp_path / "count"
    proc = spawn("pause_threads.py", 8, path)
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        assert len(pauser.threads) == 9
        before = counter(path)
        for i in range(300):
            result = pauser.pause(timeout=2.0)
            assert result.complete, result
            assert sorted(result.stopped) == sorted(states(proc.pid))
            if i % 30 == 0:
                assert set(states(proc.pid).values()) == {"t"}
                frozen = counter(path)
                time.sleep(0.01)
                assert counter(path) == frozen, "target ran while paused"
            pauser.resume()
            pauser.service(0.001)
        assert wait_for(lambda: counter(path) > before + 50, pauser)
        assert not pauser.job_stopped
    assert wait_until(lambda: set(states(proc.pid).values()) <= {"R", "S"})
    after = counter(path)
    assert wait_until(lambda: counter(path) > after), "target stopped after close()"


def test_roundtrip_cost(procs, tmp_path):
    """Measure what a sample costs the target: pause() + resume(), for 1, 8, 64 threads."""
    report = []
    for total in (1, 8, 64):
        proc = spawn("pause_threads.py", total - 1, tmp_path / f"c{total}")
        procs.append(proc)
        with Pauser(proc.pid) as pauser:
            assert len(pauser.threads) == total
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                result = pauser.pause(timeout=2.0)
                pauser.resume()
                times.append(time.perf_counter() - t0)
                assert result.complete
                pauser.service(0.001)
        proc.kill()
        times.sort()
        mean = sum(times) / len(times)
        report.append(
            f"{total} threads: mean {mean * 1e6:.0f} us, median {times[100] * 1e6:.0f} us, "
            f"p95 {times[190] * 1e6:.0f} us"
        )
        assert mean < 0.002 * total + 0.005  # generous: catches a hang, not noise
    print("\npause+resume round trip:\n  " + "\n  ".join(report))


# --------------------------------------------------------------------------- signals


def test_signals_are_passed_on_and_job_control_works(procs, tmp_path):
    state = tmp_path / "state"
    proc = spawn("pause_signals.py", state, 3.0, 30)
    procs.append(proc)

    def field(i: int) -> int:
        return counter(state, i)

    seen: dict = {}  # everything the Pauser reported, over the whole run
    with Pauser(proc.pid) as pauser:
        # SIGUSR1 from outside, one at a time: each must run the handler exactly once.
        for i in range(20):
            os.kill(proc.pid, signal.SIGUSR1)
            assert wait_for(lambda i=i: field(2) == i + 1, pauser, totals=seen), f"USR1 #{i} lost"

        # SIGSTOP: the target stops and stays stopped while we keep sampling at 1 kHz.
        os.kill(proc.pid, signal.SIGSTOP)
        stop_started = time.monotonic()
        assert wait_for(lambda: pauser.job_stopped, pauser, totals=seen)
        drive(pauser, 0.05, totals=seen)
        ticks = field(0)
        rounds = seen["rounds"]
        drive(pauser, 0.3, totals=seen)
        assert seen["rounds"] - rounds > 50
        assert field(0) == ticks, "target ran while job-stopped"
        # Under a tracer the kernel shows a group-stopped thread as 't'.
        assert set(states(proc.pid).values()) <= {"t", "T"}
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(r"State:\s+t", status)
        result = pauser.pause()
        assert result.complete and pauser.job_stopped
        seen["signals"] += [sig for _, sig in result.events.signals]
        pauser.resume()

        os.kill(proc.pid, signal.SIGCONT)
        stopped_for = time.monotonic() - stop_started
        assert wait_for(lambda: field(0) > ticks + 10, pauser, totals=seen), "SIGCONT ignored"
        assert not pauser.job_stopped

        drive(pauser, 30.0, totals=seen)
        assert seen["exited"], "target did not finish"
        assert os.waitstatus_to_exitcode(seen["exit_status"]) == 0

    counts = json.loads(proc.stdout.readline())
    passed_on = seen["signals"]
    assert counts["usr1"] == 20 == passed_on.count(signal.SIGUSR1)
    assert signal.SIGSTOP in passed_on and signal.SIGCONT in passed_on
    assert counts["forked"] == 30
    assert counts["reaped"] == 30, "a SIGCHLD was swallowed: children left unreaped"
    # Every SIGALRM we saw reached the handler. (Python runs its handler once for
    # deliveries that land before its eval loop looks again: two 10 ms apart when the
    # target's thread waits that long for a CPU. Under a busy CI machine that was 4% of
    # them; a tracer losing signals loses them whatever the load.)
    alarms = passed_on.count(signal.SIGALRM)
    assert alarms - 2 - alarms // 10 <= counts["alarms"] <= alarms, (counts, alarms)
    # And the timer really ran: about one alarm per 10 ms while not stopped.
    assert alarms > 0.5 * (counts["elapsed"] - stopped_for) / 0.01, (counts, stopped_for)


def test_events_still_handled_when_another_thread_may_take_sigchld(procs, tmp_path):
    """A recorder thread that leaves SIGCHLD unblocked can steal the wake-up: slower, not lost."""
    state = tmp_path / "state"
    proc = spawn("pause_signals.py", state, 1.0, 5)
    procs.append(proc)
    stop = threading.Event()
    bystander = threading.Thread(target=stop.wait)  # started before the Pauser blocks SIGCHLD
    bystander.start()
    try:
        seen: dict = {}
        with Pauser(proc.pid) as pauser:
            assert pauser._slice_idle < 0.01  # the slow path is the one under test
            for i in range(5):
                os.kill(proc.pid, signal.SIGUSR1)
                assert wait_for(lambda i=i: counter(state, 2) == i + 1, pauser, totals=seen)
            drive(pauser, 20.0, totals=seen)
            assert seen["exited"]
    finally:
        stop.set()
        bystander.join()
    counts = json.loads(proc.stdout.readline())
    assert counts["usr1"] == 5 and counts["reaped"] == counts["forked"] == 5


def test_signal_held_while_paused_is_delivered_on_close(procs, tmp_path):
    state = tmp_path / "state"
    # No timer: an alarm landing between the seize and our kill would be the signal the
    # thread stops for, and SIGUSR1 would stay pending in the kernel, not reported.
    proc = spawn("pause_signals.py", state, 2.0, 0, 0)
    procs.append(proc)
    pauser = Pauser(proc.pid)
    # Not serviced yet, the target sits in a signal-delivery stop; pause() holds it.
    os.kill(proc.pid, signal.SIGUSR1)
    time.sleep(0.05)
    assert Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "t"
    result = pauser.pause()
    assert result.complete
    assert (proc.pid, signal.SIGUSR1) in result.events.signals
    assert pauser.close() == ()
    assert wait_until(lambda: counter(state, 2) == 1), "signal held at close() was lost"
    proc.wait(timeout=5)
    assert json.loads(proc.stdout.readline())["usr1"] == 1


def test_close_while_job_stopped_leaves_it_stopped(procs, tmp_path):
    path = tmp_path / "count"
    proc = spawn("pause_threads.py", 3, path)
    procs.append(proc)
    pauser = Pauser(proc.pid)
    os.kill(proc.pid, signal.SIGSTOP)
    assert wait_for(lambda: pauser.job_stopped, pauser)
    assert pauser.close() == ()
    assert wait_until(lambda: set(states(proc.pid).values()) == {"T"}), "not job-stopped"
    frozen = counter(path)
    time.sleep(0.05)
    assert counter(path) == frozen
    os.kill(proc.pid, signal.SIGCONT)
    assert wait_until(lambda: counter(path) > frozen)


def test_seizing_a_stopped_process_keeps_it_stopped(procs, tmp_path):
    path = tmp_path / "count"
    proc = spawn("pause_threads.py", 2, path)
    procs.append(proc)
    # SIGSTOP, not SIGTSTP: the kernel discards SIGTSTP sent to an orphaned process group,
    # which is what a target started from CI or a background job is in.
    os.kill(proc.pid, signal.SIGSTOP)
    assert wait_until(lambda: set(states(proc.pid).values()) == {"T"})
    with Pauser(proc.pid) as pauser:
        assert wait_for(lambda: pauser.job_stopped, pauser)
        frozen = counter(path)
        drive(pauser, 0.2)
        assert counter(path) == frozen
        os.kill(proc.pid, signal.SIGCONT)
        assert wait_for(lambda: counter(path) > frozen, pauser)


# --------------------------------------------------------------------------- threads


def test_thread_churn(procs):
    proc = spawn("pause_churn.py", 2.0, stdin=subprocess.PIPE)
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        totals = drive(pauser, 20.0)
        assert totals["exited"], "churning target did not finish"
        assert os.waitstatus_to_exitcode(totals["exit_status"]) == 0
    out = proc.stdout.read().split()
    assert out[0] == "threads" and out[2] == "ok", out
    # (in 2 s: 352 once on this machine with both cores busy elsewhere)
    assert int(out[1]) > 200, "the target should start hundreds of threads a second"
    assert totals["new"] == int(out[1]), "every new thread is followed"
    assert totals["rounds"] > 1000


def test_target_spawning_subprocesses(procs):
    proc = spawn("pause_spawn.py", 1.0)
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        totals = drive(pauser, 20.0)
        assert totals["exited"]
        assert os.waitstatus_to_exitcode(totals["exit_status"]) == 0
    out = proc.stdout.read().split()
    assert out[0] == "runs" and int(out[1]) > 20
    assert totals["signals"].count(signal.SIGCHLD) >= 1  # children's exits, passed on


def test_exec_is_reported(procs):
    proc = spawn("pause_exec.py")
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        assert len(pauser.threads) == 5
        execed = False
        deadline = time.monotonic() + 5
        while not execed and time.monotonic() < deadline:
            result = pauser.pause()
            pauser.resume()
            execed = result.events.execed or pauser.service(0.001).execed
        assert execed
        assert wait_for(lambda: pauser.threads == (proc.pid,), pauser)
        assert pauser.pause(timeout=2.0).complete
        pauser.resume()
        totals = drive(pauser, 5.0)
        assert totals["exited"]
        assert os.waitstatus_to_exitcode(totals["exit_status"]) == 7
    assert proc.stdout.read() == "after exec\n"


def test_process_whose_main_thread_ended(procs, tmp_path):
    path = tmp_path / "count"
    proc = spawn("pause_lone_threads.py", path, 1.0)
    procs.append(proc)
    time.sleep(0.05)
    with Pauser(proc.pid) as pauser:
        assert proc.pid not in pauser.threads and len(pauser.threads) == 2
        result = pauser.pause()
        assert result.complete
        frozen = counter(path)
        time.sleep(0.01)
        assert counter(path) == frozen
        pauser.resume()
        assert wait_for(lambda: counter(path) > frozen, pauser)
        totals = drive(pauser, 5.0)
        assert totals["exited"] and pauser.threads == ()


# --------------------------------------------------------------------------- exits


def test_target_exits_normally(procs, tmp_path):
    proc = spawn("pause_threads.py", 4, tmp_path / "count", 0.3, 3)
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        totals = drive(pauser, 10.0)
        assert totals["exited"]
        assert os.waitstatus_to_exitcode(totals["exit_status"]) == 3
        assert pauser.exited and pauser.threads == ()
        result = pauser.pause()  # after the end: empty, no exception
        assert not result.complete and result.stopped == () and not result.events
        pauser.resume()
        assert not pauser.service(0.01)
    assert proc.stdout.read().startswith("done")


@pytest.mark.parametrize("while_paused", [True, False])
def test_target_sigkilled(procs, tmp_path, while_paused):
    proc = spawn("pause_threads.py", 6, tmp_path / "count")
    procs.append(proc)
    with Pauser(proc.pid) as pauser:
        drive(pauser, 0.05)
        if while_paused:
            assert pauser.pause(timeout=2.0).complete
            proc.kill()
            time.sleep(0.02)
            pauser.resume()
        else:
            proc.kill()
        totals = drive(pauser, 5.0)
        assert totals["exited"]
        assert os.WIFSIGNALED(totals["exit_status"])
        assert os.WTERMSIG(totals["exit_status"]) == signal.SIGKILL
        assert pauser.threads == ()


# --------------------------------------------------------------------------- recorder death


@pytest.mark.parametrize("mode", ["paused", "seized"])
def test_recorder_killed_releases_target(procs, tmp_path, mode):
    path = tmp_path / "count"
    target = spawn("pause_threads.py", 4, path)
    procs.append(target)
    holder = spawn("pause_holder.py", target.pid, mode, cwd=ROOT)
    procs.append(holder)
    assert holder.stdout.readline().strip() == "complete"
    status = Path(f"/proc/{target.pid}/status").read_text()
    assert re.search(rf"TracerPid:\s+{holder.pid}\b", status)
    if mode == "paused":
        assert set(states(target.pid).values()) == {"t"}
        frozen = counter(path)
        time.sleep(0.05)
        assert counter(path) == frozen
    holder.kill()
    holder.wait()
    assert wait_until(lambda: not set(states(target.pid).values()) & {"t", "T"})
    assert re.search(r"TracerPid:\s+0\b", Path(f"/proc/{target.pid}/status").read_text())
    before = counter(path)
    assert wait_until(lambda: counter(path) > before), "target left stopped by a dead recorder"


# --------------------------------------------------------------------------- errors


def test_no_such_process():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    with pytest.raises(TargetError, match=rf"^no such process: {pid}$"):
        Pauser(pid)


def test_own_process_is_refused():
    with pytest.raises(TargetError, match="own process"):
        Pauser(os.getpid())


def test_already_traced(procs, tmp_path):
    target = spawn("pause_threads.py", 1, tmp_path / "count")
    procs.append(target)
    holder = spawn("pause_holder.py", target.pid, "seized", cwd=ROOT)
    procs.append(holder)
    with pytest.raises(TargetError) as info:
        Pauser(target.pid)
    message = str(info.value)
    assert f"already traced by process {holder.pid} (python" in message
    assert "\n" not in message
    other = spawn("pause_threads.py", 1, tmp_path / "count2")
    procs.append(other)
    with Pauser(other.pid):
        with pytest.raises(TargetError, match=rf"^process {other.pid} is already traced by this"):
            Pauser(other.pid)


def test_permission_denied(procs, tmp_path):
    target = spawn("pause_threads.py", 1, tmp_path / "count")
    procs.append(target)
    # Become an unprivileged user after start-up (the interpreter may live where that
    # user cannot read): setting every uid to non-zero drops CAP_SYS_PTRACE.
    code = (
        "import os, sys; from flamekit.record.proc.pause import Pauser\n"
        "from flamekit.errors import TargetError\n"
        "os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)\n"
        "try:\n    Pauser(int(sys.argv[1]))\n"
        "except TargetError as e:\n    print(e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(target.pid)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(f"permission denied to trace process {target.pid}: "), line
    # the cause that applies, not a list of guesses (tests/test_access.py has the others)
    assert f"pid {target.pid} runs as root (uid 0) and flamekit as nobody (uid 65534)" in line
    assert line.endswith("run flamekit as root"), line


def test_calls_from_another_thread_are_refused(procs, tmp_path):
    target = spawn("pause_threads.py", 1, tmp_path / "count")
    procs.append(target)
    with Pauser(target.pid) as pauser:
        caught: list[BaseException] = []

        def other() -> None:
            try:
                pauser.pause()
            except BaseException as exc:  # noqa: BLE001
                caught.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert isinstance(caught[0], RuntimeError)
        assert pauser.pause(timeout=2.0).complete
        pauser.resume()
    with pytest.raises(RuntimeError, match="closed"):
        pauser.pause()

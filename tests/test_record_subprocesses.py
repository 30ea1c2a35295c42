"""``flamekit record --subprocesses`` and ``dump --subprocesses``: a process tree is one
recording, however its processes start, and no process of it is ever left stopped.

Each tree target (tests/targets/tree.py, prefork.py) writes the pid and role of each
worker itself, so the tests know which processes the recording must hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_record_e2e import some

from flamekit.trace import Trace, load

TARGETS = Path(__file__).resolve().parent / "targets"
TREE = TARGETS / "tree.py"
PREFORK = TARGETS / "prefork.py"
MODES = pytest.mark.parametrize("mode", [[], ["--nonblocking"]], ids=["pausing", "nonblocking"])


def record(out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "--subprocesses", "-o", str(out),
         *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def samples_in(trace: Trace, pid: int, function: str) -> int:
    """Samples of ``pid``'s runs whose stack holds ``function``."""
    names = {ref: c.name for ref, c in trace.codes.items()}
    n = 0
    for t, sid in zip(trace.columns.thread, trace.columns.stack):
        if trace.run_of(t).pid == pid and any(
            names[c] == function for c, _ in trace.stacks.get(sid, ())
        ):
            n += 1
    return n


def runs_of(trace: Trace, pid: int) -> list:
    return [r for r in trace.runs if r.pid == pid]


@pytest.mark.parametrize("how", ["fork", "spawn", "forkserver", "pool", "subprocess", "grand"])
def test_every_python_of_the_tree_is_recorded(tmp_path: Path, how: str) -> None:
    py = some((3, 12)).path
    out, rep = tmp_path / "t.fkt", tmp_path / "report.json"
    r = record(out, "-r", "200", "--", py, str(TREE), how, "1.0", str(rep))
    assert r.returncode == 0, r.stderr
    trace = load(out)
    workers = [d for d in report(rep) if "role" in d]
    assert len(workers) == (1 if how == "subprocess" else 2), workers
    root = trace.runs[0]
    assert root.pid == trace.header.pid and root.process.python_version == "3.12.1"
    for w in workers:
        runs = runs_of(trace, w["pid"])
        assert runs and runs[-1].process.python_version == "3.12.1", (w, trace.runs)
        assert runs[-1].end is not None and runs[-1].end.how == "exited", runs
        assert runs[-1].process.ppid in {r.pid for r in trace.runs}  # a tree
        assert samples_in(trace, w["pid"], "work") > 50, (w, Counter(trace.columns.thread))


@MODES
def test_a_shell_between_two_pythons_is_watched_not_recorded(tmp_path: Path, mode: list) -> None:
    """sh -c 'sleep 0.2; exec python ...': the shell and its sleep are named in the trace
    (runs without a Python version, no samples), then the shell's pid runs Python: a new
    run of the same process, recorded."""
    py = some((3, 12)).path
    out, rep = tmp_path / "t.fkt", tmp_path / "report.json"
    r = record(out, *mode, "-r", "200", "--", py, str(TREE), "shell", "1.0", str(rep))
    assert r.returncode == 0, r.stderr
    trace = load(out)
    (child,) = [d for d in report(rep) if "role" in d]
    runs = runs_of(trace, child["pid"])
    assert [r.process.python_version for r in runs] == [None, "3.12.1"], runs
    assert runs[0].end is not None and runs[0].end.how == "exec"
    assert runs[0].process.cmdline[0] == "sh"
    sleeps = [r for r in trace.runs if r.process.cmdline[:1] == ("sleep",)]
    assert sleeps and all(r.process.python_version is None for r in sleeps)
    watched = {r.index for r in trace.runs if r.process.python_version is None}
    assert not watched & {trace.thread_runs[t] for t in trace.columns.thread}
    assert samples_in(trace, child["pid"], "work") > 50


@MODES
def test_a_python_that_execs_another_program_ends_its_run(tmp_path: Path, mode: list) -> None:
    py = some((3, 12)).path
    out, rep = tmp_path / "t.fkt", tmp_path / "report.json"
    r = record(out, *mode, "-r", "200", "--", py, str(TREE), "exec-away", "0.8", str(rep))
    assert r.returncode == 0, r.stderr
    trace = load(out)
    (child,) = [d for d in report(rep) if "role" in d]
    runs = runs_of(trace, child["pid"])
    assert runs[0].process.python_version == "3.12.1"
    assert runs[0].end is not None and runs[0].end.how == "exec", runs
    assert samples_in(trace, child["pid"], "work") > 40
    assert all(r.process.python_version is None for r in runs[1:])


def test_a_child_of_another_python_version(tmp_path: Path) -> None:
    """A 3.12 parent starts a 3.8 child: each is read with its own layout, and the child's
    code records carry its own line-table format, so it symbolizes as 3.8."""
    out, rep = tmp_path / "t.fkt", tmp_path / "report.json"
    old = some((3, 8))
    r = record(out, "-r", "200", "--", some((3, 12)).path, str(TREE), "other", "1.0", str(rep),
               old.path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    trace = load(out)
    (child,) = [d for d in report(rep) if "role" in d]
    (run,) = runs_of(trace, child["pid"])
    assert run.process.python_version.startswith("3.8.")
    # (1 s at 200 Hz; a loaded run gave 38)
    assert samples_in(trace, child["pid"], "work") >= 10
    lines = subprocess.run(
        [sys.executable, "-m", "flamekit", "top", str(out), "--lines", "-n", "0"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "work (<string>:6)" in lines or "work (<string>:7)" in lines, lines


def test_a_short_child_is_found(tmp_path: Path) -> None:
    """A child that runs Python for a quarter of a second appears in the trace."""
    py = some((3, 12)).path
    out, rep = tmp_path / "t.fkt", tmp_path / "report.json"
    r = record(out, "-r", "500", "--", py, str(TREE), "subprocess", "0.25", str(rep))
    assert r.returncode == 0, r.stderr
    (child,) = [d for d in report(rep) if "role" in d]
    assert samples_in(load(out), child["pid"], "work") > 5


def _states(pids: list[int]) -> dict[int, set[str]]:
    out = {}
    for pid in pids:
        states = set()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    states.add(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
        out[pid] = states
    return out


def _tracer(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _prefork(tmp_path: Path, workers: int, seconds: float) -> tuple[subprocess.Popen, Path]:
    rep = tmp_path / "prefork.json"
    proc = subprocess.Popen(
        [some((3, 12)).path, str(PREFORK), str(workers), str(seconds), str(rep)]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (rep.exists() and rep.read_text()):
        time.sleep(0.01)
    return proc, rep


def test_attached_prefork_server_with_a_respawned_worker(tmp_path: Path) -> None:
    """A prefork master with 4 workers, recorded at 1000 Hz from outside, one worker
    killed and respawned: each worker is a run of its own, the new one included, and each
    worker's share of the busy samples is within 5 points of its share of the work it
    timed itself."""
    proc, rep = _prefork(tmp_path, 4, 6.0)
    out = tmp_path / "t.fkt"
    try:
        master = report(rep)[0]
        rec = subprocess.Popen(
            [sys.executable, "-m", "flamekit", "record", "-q", "--subprocesses", "-r", "1000",
             "-p", str(master["master"]), "-o", str(out)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        pids = [master["master"], *master["workers"]]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(_tracer(p) == rec.pid for p in pids):
            time.sleep(0.01)
        assert all(_tracer(p) == rec.pid for p in pids), "not every process was taken"
        time.sleep(1.0)
        victim = master["workers"][0]
        os.kill(victim, signal.SIGKILL)
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    trace = load(out)
    docs = report(rep)
    respawned = [d for d in docs if "respawned" in d]
    assert [d["died"] for d in respawned] == [victim]
    victim_runs = runs_of(trace, victim)
    assert victim_runs[-1].end.how == "killed" and victim_runs[-1].end.status == signal.SIGKILL
    truth = {d["pid"]: d["work_s"] for d in docs if "work_s" in d}
    assert respawned[0]["respawned"] in truth and len(truth) == 4
    busy: Counter[int] = Counter()
    for i, t in enumerate(trace.columns.thread):
        if not trace.is_idle(i):
            busy[trace.run_of(t).pid] += 1
    # The precondition of an accuracy check: the recorder kept up. On an overloaded
    # machine (2 cores running four spinning workers, the recorder and more) a pause
    # waits for each worker to get a CPU, the rate falls, and a worker just woken from its
    # sleep that has not reached its stop reads as still asleep (see RunSampler.tick):
    # the shares then measure the machine, not the recorder.
    seen: Counter[int] = Counter(trace.run_of(t).pid for t in trace.columns.thread)
    lives = {r.pid: r for r in trace.runs if r.pid in truth}
    rates = sorted(
        seen[pid]
        / max(
            1e-9,
            ((r.end.end_ns if r.end else trace.duration_ns) - max(0, r.process.start_ns or 0))
            / 1e9,
        )
        for pid, r in lives.items()
    )
    if rates[len(rates) // 2] < 300:
        pytest.skip(
            f"machine overloaded: the recorder reached {rates[len(rates) // 2]:.0f} Hz a worker of 1000"
        )
    total_cpu = sum(truth.values())
    total = sum(busy[pid] for pid in truth)
    for pid, cpu in truth.items():
        got, want = 100 * busy[pid] / total, 100 * cpu / total_cpu
        assert abs(got - want) <= 5, (pid, got, want, truth, busy)
    # every worker is a root of its own in what the user opens (a flame graph's input)
    folded = subprocess.run(
        [sys.executable, "-m", "flamekit", "convert", str(out), "--to", "collapsed", "-o", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    roots: Counter[int] = Counter()
    for line in folded.splitlines():
        m = re.match(r"process (\d+): ", line)
        assert m, line
        roots[int(m.group(1))] += int(line.rsplit(" ", 1)[1])
    assert set(truth) <= set(roots) and sum(roots.values()) == sum(busy.values())


def test_no_process_of_the_tree_is_left_stopped(tmp_path: Path) -> None:
    """Workers come and go under a 1000 Hz pausing recording, which is then SIGKILLed:
    every process of the tree runs on, traced by nobody."""
    proc, rep = _prefork(tmp_path, 3, 30.0)
    try:
        master = report(rep)[0]
        pids = [master["master"], *master["workers"]]
        rec = subprocess.Popen(
            [sys.executable, "-m", "flamekit", "record", "-q", "--subprocesses", "-r", "1000",
             "-p", str(pids[0]), "-o", str(tmp_path / "t.fkt")],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(_tracer(p) == rec.pid for p in pids):
            time.sleep(0.01)
        assert all(_tracer(p) == rec.pid for p in pids), "not every process was taken"
        os.kill(pids[1], signal.SIGKILL)  # one exits mid-recording
        time.sleep(0.5)
        rec.kill()
        rec.wait()
        time.sleep(0.2)
        live = [p for p in report(rep) if "respawned" in p]
        states = _states([pids[0], *pids[2:], *(d["respawned"] for d in live)])
        assert states and all(not s & {"t", "T"} for s in states.values()), states
        assert all(_tracer(p) == 0 for p in states)
    finally:
        proc.kill()
        proc.wait()


def test_a_child_traced_by_another_tool_is_read_running_with_one_warning(tmp_path: Path) -> None:
    """A worker already traced (by a debugger, here a python-ptrace seize of our own)
    cannot be paused: one warning line names it, it is read without pausing, and the
    recording goes on."""
    proc, rep = _prefork(tmp_path, 2, 4.0)
    holder = None
    try:
        master = report(rep)[0]
        busy = master["workers"][1]
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sys, time; from flamekit.record.proc.pause import Pauser\n"
             f"p = Pauser({busy}); print('held', flush=True); time.sleep(30)"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = tmp_path / "t.fkt"
        r = record(out, "-r", "200", "-d", "1.5", "-p", str(master["master"]))
        assert r.returncode == 0, r.stderr
        warnings = [line for line in r.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and f"pid {busy}" in warnings[0], r.stderr
        assert samples_in(load(out), busy, "serve") > 20
        assert _tracer(busy) == holder.pid  # left as it was found
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        proc.kill()
        proc.wait()


def test_dump_shows_every_python_process_of_the_tree(tmp_path: Path) -> None:
    py = some((3, 12)).path
    rep = tmp_path / "report.json"
    # Workers that outlive any wait a loaded machine makes (5 s once let the tree end
    # before the dump came: its root a zombie); the whole group is killed at the end.
    proc = subprocess.Popen([py, str(TREE), "grand", "60", str(rep)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and len([d for d in (report(rep) if rep.exists() else []) if "role" in d]) < 2
        ):
            time.sleep(0.02)
        workers = [d for d in report(rep) if "role" in d]
        r = subprocess.run(
            [sys.executable, "-m", "flamekit", "dump", "--subprocesses", "--json", "-p",
             str(proc.pid)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        pids = [p["pid"] for p in doc["processes"]]
        assert pids[0] == proc.pid and {w["pid"] for w in workers} <= set(pids), (pids, workers)
        for p in doc["processes"]:
            if p["pid"] != proc.pid:
                frames = [f["function"] for t in p["threads"] for f in t["frames"]]
                assert "work" in frames, p
        text = subprocess.run(
            [sys.executable, "-m", "flamekit", "dump", "--subprocesses", "-p", str(proc.pid)],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        assert text.count("Process ") >= 2 and "work (<string>:" in text, text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

"""``flamekit top -p PID`` / ``top -- CMD``: the live view.

The picture (analysis/live.py) is checked against the offline ranking of the same
records; the command is checked on a real target, without a terminal (the plain table,
``--once``, ``-o``) and in a real one (tmux 3.3a: send-keys, capture-pane), where the
screen's content, the sort keys, a resize, ``q`` and SIGHUP are checked, and after each
the target's state: still running, not stopped, not traced. Every wait has a deadline;
nothing is asserted after a fixed sleep.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.live import LiveProfile, View
from flamekit.analysis.profile import build_profile
from flamekit.analysis.ranking import rank
from flamekit.trace import load
from flamekit.trace import records as R
from flamekit.trace.reader import TraceReader
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE, SampleColumns, unpack_into
from flamekit.trace.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "tests" / "targets" / "top_split.py"
FLAMEKIT = [sys.executable, "-m", "flamekit"]
#: Generous: CI's 2 cores are shared with the rest of the suite.
DEADLINE_S = 45.0
TMUX = shutil.which("tmux")


# -- the picture against the offline ranking ---------------------------------------------


def _replay(path: Path, model: LiveProfile, roll_at: set[int], views: list[View]) -> None:
    """Feed a trace's records and samples to ``model`` as the writer would, rolling after
    the samples numbered in ``roll_at`` and drawing a board with the next view each time
    (so every way the whole run's tally is kept is gone through)."""
    n = 0
    k = 0
    for rec in TraceReader(str(path)):
        if not isinstance(rec, R.Samples):
            model.record(rec)
            continue
        cols = SampleColumns()
        unpack_into(rec.blob, cols)
        for t, thread, flags, sid in zip(cols.time, cols.thread, cols.flags, cols.stack):
            model.sample(t, thread, sid, bool(flags & FLAG_GIL), bool(flags & FLAG_IDLE))
            n += 1
            if n in roll_at:
                model.roll()
                model.board(views[k % len(views)])
                k += 1
    model.roll()


views = st.builds(
    View,
    by=st.sampled_from(["self", "total", "name"]),
    idle=st.booleans(),
    gil=st.booleans(),
    threads=st.booleans(),
    lines=st.booleans(),
)


@given(
    seed=st.integers(0, 2**16),
    rolls=st.sets(st.integers(1, 600), max_size=12),
    shown=st.lists(views, min_size=1, max_size=6),
    last=views,
)
def test_the_live_board_counts_what_the_offline_ranking_counts(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    rolls: set[int],
    shown: list[View],
    last: View,
) -> None:
    path = tmp_path_factory.mktemp("live") / "t.fkt"
    with open(path, "wb") as f:
        write_synthetic(f, samples=600, stacks=30, threads=3, seed=seed, idle_share=0.3)
    model = LiveProfile()
    _replay(path, model, rolls, shown)
    board = model.board(last)
    assert board is not None
    prof = build_profile(load(path))
    sel = select(prof, FilterOptions(idle=last.idle, gil=last.gil))
    offline = {
        prof.label(r.frame): (r.self_samples, r.total_samples)
        for r in rank(sel, lines=last.lines)
        if r.total_samples
    }
    live: dict[str, tuple[int, int]] = {}
    for row in board.rows:  # per thread: a function's rows add up to its row over all
        s, t = live.get(row.label, (0, 0))
        live[row.label] = (s + row.self_all, t + row.total_all)
    assert {k: v for k, v in live.items() if v[1]} == offline
    assert board.selected_all == len(sel)
    assert board.figures.samples_all == len(prof.trace)
    # the order asked for
    if last.by == "name":
        keys = [(r.label, r.thread or "") for r in board.rows]
        assert keys == sorted(keys)
    else:
        first = [r.self_now if last.by == "self" else r.total_now for r in board.rows]
        assert first == sorted(first, reverse=True)


def test_intervals_split_the_run(tmp_path: Path) -> None:
    """The last interval's counts are its own; the whole run's are every interval's."""
    path = tmp_path / "t.fkt"
    with open(path, "wb") as f:
        write_synthetic(f, samples=300, stacks=10, threads=1, seed=7, idle_share=0.0)
    model = LiveProfile()
    _replay(path, model, {100, 200}, [View()])  # its last roll closes samples 201-300
    board = model.board(View())
    assert board is not None
    assert (board.figures.samples_now, board.figures.samples_all) == (100, 300)
    assert sum(r.self_now for r in board.rows) == 100
    assert sum(r.self_all for r in board.rows) == 300
    assert board.figures.threads_now == board.figures.threads_all == 1


# -- a real target ----------------------------------------------------------------------


def _wait(what: str, check: Callable[[], object], timeout: float = DEADLINE_S) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def assert_left_running(pid: int, working: bool = True) -> None:
    """Not stopped, not traced, and (``working``) still working: its CPU time grows."""
    st_ = _status(pid)
    assert st_["State"][0] not in "Tt", st_["State"]
    assert st_["TracerPid"].strip() == "0"
    if not working:
        return
    before = _cpu_ticks(pid)
    _wait("the target to run on", lambda: _cpu_ticks(pid) > before)
    assert _status(pid)["State"][0] not in "Tt"


@pytest.fixture
def target(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen([sys.executable, str(TARGET), str(ready)])
    try:
        _wait("the target to be ready", ready.exists)
        assert json.loads(ready.read_text())["pid"] == proc.pid
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _top(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this tree's flamekit, from any cwd
    return subprocess.run(
        [*FLAMEKIT, "top", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _table(text: str) -> list[list[str]]:
    """The tables of plain output: per table, its rows (the lines after the heads)."""
    tables = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        heads = [i for i, line in enumerate(lines) if line.lstrip().startswith("%Own")]
        if heads:
            tables.append(lines[heads[0] + 1 :])
    return tables


def _row(line: str) -> tuple[float, float, str]:
    """(%own, %total, label) of a table row."""
    m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+(?:[\d,]+\s+){4}\s*(.*)$", line)
    assert m, line
    return float(m.group(1)), float(m.group(2)), m.group(3)


def test_once_prints_one_table_and_leaves_the_target_running(
    target: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = _top("--once", "-p", str(target.pid), cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert not list(cwd.iterdir())  # without -o no trace is left anywhere
    tables = _table(r.stdout)
    assert len(tables) == 1, r.stdout
    own, total, label = _row(tables[0][0])
    assert label.startswith("zz_hot ("), r.stdout
    assert 40 <= own <= 95 and own == total, r.stdout
    assert f"pid {target.pid}" in r.stdout
    assert_left_running(target.pid)


def _ctrl_c_as_at_a_terminal() -> None:  # runs in top, before exec
    """SIGINT's default action, as at a terminal, whatever the suite inherited (a
    background job's, nohup's, ignore it: an ignored SIGINT stays ignored by design)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def test_plain_table_every_interval_until_ctrl_c(target: subprocess.Popen[bytes]) -> None:
    top = subprocess.Popen(
        [*FLAMEKIT, "top", "-p", str(target.pid), "--interval", "0.5", "--sort", "total"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )
    # a top that never ends on Ctrl-C fails here, not hangs the suite
    watchdog = threading.Timer(DEADLINE_S, top.kill)
    watchdog.start()
    try:
        seen: list[str] = []
        assert top.stdout is not None

        def three_tables() -> bool:
            line = top.stdout.readline()  # blocks no longer than one interval
            seen.append(line)
            return sum(s.startswith("flamekit top ·") for s in seen) >= 3

        _wait("three tables", three_tables)
        top.send_signal(signal.SIGINT)
        # read on through the same buffered reader (communicate() would skip what it holds)
        out = top.stdout.read()
        err = top.stderr.read() if top.stderr else ""
        top.wait(timeout=DEADLINE_S)
    finally:
        watchdog.cancel()
        if top.poll() is None:
            top.kill()
            top.wait()
    assert top.returncode == 0, err
    tables = _table("".join(seen) + out)
    assert len(tables) >= 3
    # sorted by total: the caller (100% total, some own) before the hot function
    assert _row(tables[1][0])[2].startswith("aa_caller ("), tables[1]
    assert_left_running(target.pid)


def test_output_keeps_every_sample_shown(target: subprocess.Popen[bytes], tmp_path: Path) -> None:
    out = tmp_path / "live.fkt"
    r = _top("--once", "-p", str(target.pid), "-o", str(out))
    assert r.returncode == 0, r.stderr
    m = re.search(r"samples [\d,]+ \(([\d,]+) in all\)", r.stdout)
    assert m, r.stdout
    shown = int(m.group(1).replace(",", ""))
    assert shown > 0
    trace = load(out)
    assert len(trace) == shown  # the trace holds exactly what the screen counted
    assert trace.end is not None and trace.end.reason == "interrupted"
    info = subprocess.run(
        [*FLAMEKIT, "info", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert info.returncode == 0, info.stderr
    assert re.search(rf"samples:\s+{shown:,} ", info.stdout), info.stdout
    assert (
        "zz_hot"
        in subprocess.run(
            [*FLAMEKIT, "convert", str(out), "--to", "collapsed", "-o", "-"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert_left_running(target.pid)


def test_a_launched_command_is_stopped_when_top_quits(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    r = _top("--once", "--", sys.executable, str(TARGET), str(ready))
    assert r.returncode == 0, r.stderr
    assert ready.exists(), "the command never ran"
    pid = json.loads(ready.read_text())["pid"]
    assert not os.path.exists(f"/proc/{pid}"), "the launched command runs on"
    assert "flamekit top ·" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["x.fkt", "--", "true"], "not both"),
        (["-p", "1", "-p", "2"], "one process id"),
        (["-p", "1", "--from", "1"], "--from: only for a trace FILE"),
        (["x.fkt", "--once"], "--once: only for a live top"),
        ([], "give a trace FILE, -p PID"),
        (["-p", "1", "--", "true"], "not both"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    r = _top(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr


# -- in a real terminal ------------------------------------------------------------------


class Tmux:
    """One tmux server of our own (its own socket), one session, 120x40 to start."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"flamekit-top-{os.getpid()}-{time.monotonic_ns()}"
        self.tmp = tmp

    def __call__(self, *args: str) -> str:
        r = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    def start(self, shell_command: str) -> None:
        self("new-session", "-d", "-x", "120", "-y", "40", shell_command)

    def screen(self) -> list[str]:
        return self("capture-pane", "-p").splitlines()

    def wait_screen(self, what: str, check: Callable[[list[str]], bool]) -> list[str]:
        last: list[list[str]] = [[]]

        def ok() -> bool:
            try:
                last[0] = self.screen()
            except AssertionError:
                return False
            return check(last[0])

        try:
            _wait(what, ok)
        except AssertionError:
            screen = "\n".join(last[0])
            raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}") from None
        return last[0]

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def first_row(screen: list[str]) -> tuple[float, float, str] | None:
    for i, line in enumerate(screen):
        if line.lstrip().startswith("%Own") and i + 1 < len(screen) and "%" in screen[i + 1]:
            return _row(screen[i + 1])
    return None


def rule_width(screen: list[str]) -> int:
    return max((len(line) for line in screen if line.startswith("───")), default=0)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.close()


def _top_shell(args: list[str], rc_file: Path | None = None, pid_file: Path | None = None) -> str:
    cmd = shlex.join(["env", "LANG=C.UTF-8", *FLAMEKIT, "top", *args])
    if pid_file is not None:  # top is the pane's process itself: SIGHUP reaches it first
        return (
            f"cd {shlex.quote(str(ROOT))} && echo $$ > {shlex.quote(str(pid_file))} && exec {cmd}"
        )
    assert rc_file is not None
    return f"cd {shlex.quote(str(ROOT))}; {cmd}; echo $? > {shlex.quote(str(rc_file))}"


def test_the_screen_sorts_redraws_on_resize_and_quits(
    target: subprocess.Popen[bytes], tmux: Tmux, tmp_path: Path
) -> None:
    rc = tmp_path / "rc"
    tmux.start(_top_shell(["-p", str(target.pid)], rc_file=rc))

    def top_is(prefix: str) -> Callable[[list[str]], bool]:
        return lambda s: (r := first_row(s)) is not None and r[2].startswith(prefix)

    screen = tmux.wait_screen("zz_hot on top", top_is("zz_hot ("))
    own, total, _ = first_row(screen) or (0, 0, "")
    assert 40 <= own <= 95, screen
    assert any(f"pid {target.pid}" in line for line in screen)
    assert any("GIL" in line and "Hz" in line for line in screen)
    assert rule_width(screen) == 119
    for key, prefix in (("t", "aa_caller ("), ("n", "<module> ("), ("o", "zz_hot (")):
        tmux("send-keys", key)
        tmux.wait_screen(f"'{key}' to put {prefix} on top", top_is(prefix))
    # per thread: the idle thread shows with idle samples on; its rows name their thread
    tmux("send-keys", "i")
    tmux("send-keys", "p")
    screen = tmux.wait_screen(
        "the per-thread view with the idle thread",
        lambda s: (
            any("thread idler" in line for line in s)
            and any("thread MainThread" in line for line in s)
        ),
    )
    tmux("send-keys", "p")
    tmux("send-keys", "i")
    for width in (90, 150):
        tmux("resize-window", "-x", str(width), "-y", "30")
        screen = tmux.wait_screen(
            f"a redraw {width} wide", lambda s, w=width: rule_width(s) == w - 1
        )
        assert len(screen) <= 30
        assert all(len(line) <= width for line in screen)
        assert first_row(screen) is not None
    tmux("send-keys", "q")
    _wait("top to quit", lambda: rc.exists() and rc.read_text().strip())
    assert rc.read_text().strip() == "0"
    assert target.poll() is None
    assert_left_running(target.pid)


def test_pause_freezes_the_screen(target: subprocess.Popen[bytes], tmux: Tmux, tmp_path: Path):
    rc = tmp_path / "rc"
    tmux.start(_top_shell(["-p", str(target.pid)], rc_file=rc))
    tmux.wait_screen("a table", lambda s: first_row(s) is not None)
    tmux("send-keys", " ")
    frozen = tmux.wait_screen("[paused]", lambda s: "[paused]" in s[0])
    # two more intervals pass: the screen stays as it was (its clock included)
    t0 = time.monotonic()
    _wait("two intervals", lambda: time.monotonic() - t0 > 2.5)
    assert tmux.screen() == frozen
    tmux("send-keys", " ")
    tmux.wait_screen("the screen to move again", lambda s: "[paused]" not in s[0] and s != frozen)
    tmux("send-keys", "q")
    _wait("top to quit", lambda: rc.exists() and rc.read_text().strip())
    assert rc.read_text().strip() == "0"
    assert_left_running(target.pid)


def test_the_terminal_going_away_leaves_the_target_running(
    target: subprocess.Popen[bytes], tmux: Tmux, tmp_path: Path
) -> None:
    pid_file = tmp_path / "top.pid"
    tmux.start(_top_shell(["-p", str(target.pid)], pid_file=pid_file))
    tmux.wait_screen("a table", lambda s: first_row(s) is not None)
    top_pid = int(pid_file.read_text())
    # it holds the target (pausing mode traces it), so letting go is something it must do
    assert _status(target.pid)["TracerPid"].strip() == str(top_pid)
    tmux.close()  # the terminal is gone: SIGHUP
    _wait("top to end", lambda: not _alive(top_pid))
    assert target.poll() is None
    assert_left_running(target.pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_recorder_options_reach_the_recording(
    target: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    out = tmp_path / "nb.fkt"
    r = _top("--once", "--nonblocking", "--gil", "-r", "200", "-o", str(out), "-p", str(target.pid))
    assert r.returncode == 0, r.stderr
    assert "GIL holder only" in r.stdout
    assert _row(_table(r.stdout)[0][0])[2].startswith("zz_hot (")
    trace = load(out)
    head = trace.header
    assert head.rate_hz == 200
    assert head.mode["pausing"] is False and head.mode["gil_only"] is True
    assert len(trace) and all(trace.is_gil(i) for i in range(len(trace)))
    assert_left_running(target.pid)


def test_subprocesses_are_watched_too(tmp_path: Path) -> None:
    report = tmp_path / "prefork.json"
    prefork = ROOT / "tests" / "targets" / "prefork.py"
    master = subprocess.Popen([sys.executable, str(prefork), "2", "60", str(report)])
    try:
        _wait("the workers", lambda: report.exists() and '"master"' in report.read_text())
        r = _top("--once", "--subprocesses", "-p", str(master.pid), "--interval", "1.5")
        assert r.returncode == 0, r.stderr
        assert "3 Python processes" in r.stdout, r.stdout
        assert any(_row(line)[2].startswith("serve (") for line in _table(r.stdout)[0])
        assert master.poll() is None
        assert_left_running(master.pid, working=False)  # the master mostly waits
    finally:
        master.terminate()
        master.wait(timeout=30)


def test_the_screen_of_a_launched_command_stops_it_on_q(tmux: Tmux, tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    ready = tmp_path / "ready.json"
    tmux.start(_top_shell(["--", sys.executable, str(TARGET), str(ready)], rc_file=rc))
    tmux.wait_screen(
        "zz_hot on top", lambda s: (r := first_row(s)) is not None and "zz_hot" in r[2]
    )
    pid = json.loads(ready.read_text())["pid"]
    assert _alive(pid)
    tmux("send-keys", "q")
    _wait("top to quit", lambda: rc.exists() and rc.read_text().strip())
    assert rc.read_text().strip() == "0"
    assert not _alive(pid), "the launched command runs on"

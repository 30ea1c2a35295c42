"""``flamekit record`` end to end: the real CLI against real processes, every interpreter.

tests/targets/record_known.py parks each of its threads on one known line for its whole
life (a spin loop, a sleep in non-ASCII functions of a non-ASCII file, a blocked lock, a
sleep 501 frames deep), so every sample taken once all are parked must show exactly the
stack, file and line numbers its source's ``# MARK:`` comments give, with the spinner on
CPU holding the GIL and every other thread idle, under its own thread name.

The per-interpreter recordings run at the same time (a few interpreters at once), in a
module fixture; the tests then only read what was recorded. Signals, bad input, output
naming and accuracy run on one or two interpreters each: the CLI code they exercise does
not depend on the target's version.

The per-interpreter recordings run on the legacy interpreters too (2.7, 3.6, 3.7); what
2.7 cannot have (non-ASCII identifiers) it shows otherwise, by name: see
expected_threads. A missing interpreter fails the run (tests/pythons.py), it never skips.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pythons import Interpreter, legacy, recordable

from flamekit.analysis.profile import build_profile
from flamekit.trace import Trace, load

HERE = Path(__file__).resolve().parent
TARGETS = HERE / "targets"
KNOWN = TARGETS / "record_known.py"
MODULE = TARGETS / "record_módulo_ñ.py"
PY2_MODULE = TARGETS / "record_py2_names.py"  #: record_módulo_ñ.py's stand-in on 2.7
COUNTER = TARGETS / "record_counter.py"
SPLIT = TARGETS / "record_split.py"

INTERPRETERS = recordable()
#: The per-interpreter recordings (and test_dump's dumps) cover 2.7, 3.6 and 3.7 as well.
RECORDED = legacy() + INTERPRETERS
BY_ID = {i.id: i for i in RECORDED}

RATE = "200"  #: Hz for the short recordings
#: A launched record_known.py lives this long once ready, then exits: the recording
#: ends with it (however long the target took to start on a busy machine).
LIFETIME_S = 1.2
SHORT_S = 1.0  #: -d of the attached recordings
#: How late -d may stop: one tick, plus a loaded CI machine's scheduling.
LATE_S = 1.0
ATTACH_S = 2.0
#: A launched target's samples this close to the end of its lifetime are not checked:
#: the main thread may be returning from its sleep to exit.
PARK_MARGIN_NS = 20_000_000
#: Fewest checked samples per thread for a recording to count (under a loaded CI machine
#: the effective rate drops; this still makes "every sample" mean something).
MIN_SAMPLES = 15
#: Interpreters recorded at once by the module fixtures. CI has two cores and each
#: record_known.py spins one of them: more at once would starve the recorders.
PARALLEL = 2
DEPTH = 500  #: record_known.py's recursion depth

# -- running flamekit and targets ---------------------------------------------------------


def flamekit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "flamekit", *args]


def flamekit(
    *args: str, cwd: Path | str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run flamekit to the end (see run_to_end)."""
    return run_to_end(flamekit_argv(*args), cwd, timeout)


def run_to_end(
    argv: list[str], cwd: Path | str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``argv`` to the end. Output goes through files, not pipes: a command flamekit
    launched and left running (-d) holds the same stdout and stderr, and waiting for a
    pipe's end would wait for that command too."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run(argv, stdout=out, stderr=err, cwd=cwd, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def ok(r: subprocess.CompletedProcess, what: str = "flamekit") -> str:
    """stdout of a run that must have succeeded cleanly."""
    err = text(r.stderr)
    assert r.returncode == 0, f"{what} failed (exit {r.returncode}):\n{err}"
    assert "Traceback" not in err, err
    return text(r.stdout)


def markers(path: Path) -> dict[str, int]:
    """``# MARK:name`` comments of a target's source -> their line numbers."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"# MARK:(\S+)", line)
        if m:
            assert m.group(1) not in out, f"{path.name}: MARK:{m.group(1)} twice"
            out[m.group(1)] = n
    return out


def wait_ready(path: Path, alive: Callable[[], bool], timeout: float = 30, what: str = "") -> dict:
    """The JSON a target writes once ready; fails if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        if not alive():
            raise AssertionError(f"{what or 'target'} ended before it was ready")
        time.sleep(0.01)
    raise AssertionError(f"{what or 'target'} not ready after {timeout} s")


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def proc_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat ('' if gone)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return data[data.rfind(b")") + 2 :][:1].decode()


class Lines:
    """Collects a pipe's lines on a background thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(text(raw).rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r} in {self.lines[-20:]}")

    def join(self, timeout: float = 10) -> list[str]:
        self._t.join(timeout)
        return self.lines


class Started:
    """A target the test started itself (to attach to), killed on exit."""

    def __init__(self, argv: list[str], ready: Path, stdout=subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
        self.out = Lines(self.proc.stdout) if stdout == subprocess.PIPE else None
        try:
            self.info = wait_ready(
                ready, lambda: self.proc.poll() is None, what=" ".join(map(str, argv))
            )
        except BaseException:
            self.close()
            raise
        self.pid = self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Started:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def known_argv(interp: Interpreter, ready: Path, lifetime: float = 60) -> list[str]:
    return [interp.path, str(KNOWN), str(ready), str(lifetime)]


# -- what record_known.py must look like --------------------------------------------------


@dataclass(frozen=True)
class Frame:
    function: str  #: qualname on 3.11+, the plain name before
    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"


@dataclass
class Expected:
    ours: list[Frame]  #: innermost first: the frames in the target's own files
    tail: list[str]  #: then these functions in threading.py (threads it started)
    idle: bool
    gil: bool
    #: The holder is sometimes caught between letting the GIL go and taking it again
    #: (2.7's GIL: see OLD_GIL_GAPS): no thread holds it then, truly.
    gil_gaps: bool = False


#: 2.7's GIL (the old one; 3.2 replaced it) is let go and taken again every 100 ticks
#: (sys.setcheckinterval) even with no other thread waiting: a sample that stops the
#: spinner between the two finds no thread holding it, which is true. 4 of 495 spinner
#: samples here, 8 of 156 on a loaded CI-like run (a thread preempted more often is more
#: often preempted in that gap); a recorder misreading the holder gets nearly all.
OLD_GIL_GAPS = 0.25

#: Our own pause takes a blocked thread out of its system call, and until it has been on
#: a CPU to restart the call /proc shows it runnable. The recorder checks such a thread
#: once stopped (RunSampler.tick: still in its call, or on the instruction restarting it,
#: it is idle). Before the second check, under load one was now and then read as running:
#: the lock waiter, once in a CI run (1 of about 195 samples) and twice in about 600
#: one-second recordings here with every pause cut (--max-pause 0.05). In case a path
#: neither check knows remains, at most this share of an idle thread's samples (or one)
#: may say it runs; a recorder misreading idleness gets most of them.
WOKEN_SHARE = 0.02


def expected_threads(version: tuple[int, int]) -> dict[str, Expected]:
    """Thread name -> what every sample (and a dump) of it must show."""
    k = markers(KNOWN)
    known = str(KNOWN)

    def q(qualname: str) -> str:
        return qualname if version >= (3, 11) else qualname.rsplit(".", 1)[-1]

    tail = [q("Thread.run"), q("Thread._bootstrap_inner"), q("Thread._bootstrap")]
    # The sleeper's two functions: non-ASCII identifiers in a non-ASCII file; on 2.7,
    # which has no non-ASCII identifiers, byte-string names given to its code objects,
    # one UTF-8 and one Latin-1, which is not UTF-8 and is recorded as the text \xe9.
    module = PY2_MODULE if version < (3, 0) else MODULE
    m, mod = markers(module), str(module)
    latin = "f\\xe9_latin" if version < (3, 0) else "fé_latin"
    if version < (3, 0):  # 2.7's threading: the methods are private (two underscores)
        tail = ["run", "__bootstrap_inner", "__bootstrap"]
    main = (
        [Frame("recurse", known, k["bottom"])]
        + [Frame("recurse", known, k["recurse"])] * DEPTH
        + [Frame("main", known, k["main-call"]), Frame("<module>", known, k["module-call"])]
    )
    return {
        "MainThread": Expected(main, [], idle=True, gil=False),
        "spinner": Expected(
            [
                Frame(q("Spinner.spin_inner"), known, k["spin"]),
                Frame(q("Spinner.run_spin"), known, k["spin-call"]),
            ],
            tail,
            idle=False,
            gil=True,
            gil_gaps=version < (3, 2),
        ),
        "sleeper-ñ": Expected(
            [
                Frame("函数_cjk", mod, m["cjk-sleep"]),
                Frame(latin, mod, m["latin-call"]),
                Frame("sleeper", known, k["sleeper-call"]),
            ],
            tail,
            idle=True,
            gil=False,
        ),
        "ожидание-lock": Expected([Frame("waiter", known, k["lock"])], tail, idle=True, gil=False),
    }


def check_stack(got: list[Frame], exp: Expected, what: str) -> None:
    """``got`` (innermost first) is exactly ``exp``: our frames with lines, then the
    threading.py frames by name (their lines are the stdlib's business)."""
    n = len(exp.ours)
    head = got[:n]
    for i, (g, e) in enumerate(zip(head, exp.ours)):
        assert g == e, f"{what}: frame {i} (innermost first) is {g}, expected {e}"
    assert len(head) == n, f"{what}: {len(got)} frames, expected {n + len(exp.tail)}"
    rest = got[n:]
    assert [f.function for f in rest] == exp.tail, (
        f"{what}: below our frames: {[str(f) for f in rest]}, expected {exp.tail} in threading.py"
    )
    for f in rest:
        assert os.path.basename(f.file) == "threading.py" and f.line, f"{what}: {f}"


def check_known_trace(
    trace: Trace,
    ready: dict,
    version: tuple[int, int],
    gil_only: bool = False,
    lifetime: float | None = None,
) -> dict[str, int]:
    """Every sample of record_known.py once it is parked is exactly as expected.

    "Parked" starts at the first tick after the target said it was ready at which every
    thread shows its expected stack and flags (the main thread still has to return from
    writing the ready file and call time.sleep, which takes a while on a busy machine,
    and the spinner then has to take the GIL it let go); it ends
    ``lifetime`` after ready, when a launched target begins to exit. Returns the number
    of checked samples per thread name.
    """
    assert not trace.truncated, trace.truncation
    assert trace.end is not None
    expected = expected_threads(version)
    by_native = {t["native_id"]: t for t in ready["threads"]}
    assert {t["name"] for t in ready["threads"]} == set(expected)
    # The thread records: native tid, threading ident and name, as the target has them.
    refs = {}
    for ref, t in trace.threads.items():
        if t.native_tid in by_native:
            want = by_native[t.native_tid]
            assert t.py_thread_id == want["ident"], (t, want)
            assert t.name == want["name"], f"thread {t.native_tid}: named {t.name!r}, not {want}"
            refs[ref] = want["name"]
    origin = trace.header.start_monotonic_ns
    since = ready["ready_ns"] - origin
    until = since + int(lifetime * 1e9) - PARK_MARGIN_NS if lifetime else 1 << 62
    want_threads = {"spinner"} if gil_only else set(expected)
    profile = build_profile(trace, full_filenames=True)  # checked to the path
    symbolized: dict[int, list[Frame]] = {}

    def frames_of(sid: int) -> list[Frame]:
        if sid not in symbolized:
            fs = [profile.frames[f] for f in reversed(profile.stacks[sid])]
            symbolized[sid] = [Frame(f.qualname, f.file, f.line) for f in fs]
        return symbolized[sid]

    def parked(name: str, i: int) -> bool:
        exp = expected[name]
        if (trace.is_idle(i), trace.is_gil(i)) != (exp.idle, exp.gil):
            return False  # e.g. the spinner still taking the GIL the main thread let go
        try:
            check_stack(frames_of(cols.stack[i]), exp, name)
        except AssertionError:
            return False
        return True

    cols = trace.columns
    window = [i for i in range(len(trace)) if since <= trace.times[i] < until]
    ticks: dict[int, dict[str, int]] = {}
    for i in window:
        name = refs.get(cols.thread[i])
        if name is not None:
            ticks.setdefault(trace.times[i], {})[name] = i
    start = next(
        (
            t
            for t, seen in sorted(ticks.items())
            if set(seen) == want_threads and all(parked(n, i) for n, i in seen.items())
        ),
        None,
    )
    assert start is not None, (
        f"no tick in {len(ticks)} after ready shows every thread parked; the last one: "
        + "; ".join(
            f"{n} (idle {trace.is_idle(i)}, gil {trace.is_gil(i)}): "
            f"{' <- '.join(map(str, frames_of(cols.stack[i])[:3]))}"
            for n, i in (ticks[max(ticks)] if ticks else {}).items()
        )
    )
    late = (start - max(since, min(ticks))) / 1e9
    assert late < 2, f"the threads took {late:.1f} s to park"
    counts: dict[str, int] = {}
    gaps: dict[str, int] = {}
    woken: dict[str, int] = {}  # samples of an idle thread read as running (WOKEN_SHARE)
    for i in window:
        if trace.times[i] < start:
            continue
        ref = cols.thread[i]
        assert ref in refs, f"sample {i} of a thread the target does not have: {trace.threads[ref]}"
        name = refs[ref]
        exp = expected[name]
        where = (
            f"{name} (Python {trace.header.python_version}), {trace.times[i] / 1e9:.3f} s "
            f"({(trace.times[i] - start) / 1e6:.0f} ms after all were parked)"
        )
        check_stack(frames_of(cols.stack[i]), exp, where)
        flags = (trace.is_idle(i), trace.is_gil(i))
        if exp.gil_gaps and flags == (exp.idle, False):
            gaps[name] = gaps.get(name, 0) + 1
        elif exp.idle and flags == (False, exp.gil):
            woken[name] = woken.get(name, 0) + 1
        else:
            assert flags == (exp.idle, exp.gil), (
                f"{where}: (idle, gil) flags {flags}, expected {(exp.idle, exp.gil)} throughout"
            )
        counts[name] = counts.get(name, 0) + 1
    assert set(counts) == want_threads, f"threads sampled once parked: {counts}"
    for name, n in counts.items():
        assert n >= MIN_SAMPLES, f"{name}: only {n} samples once parked ({counts})"
        assert gaps.get(name, 0) <= OLD_GIL_GAPS * n, f"{name}: GIL gaps {gaps} in {counts}"
        assert woken.get(name, 0) <= max(1, WOKEN_SHARE * n), (
            f"{name}: read as running while it waits in {woken} of {counts}"
        )
    return counts


# -- per-interpreter recordings, all at once ---------------------------------------------


@dataclass
class Run:
    """What one interpreter's recordings produced (or the error that stopped them)."""

    interp: Interpreter
    tmp: Path
    results: dict[str, object] = field(default_factory=dict)
    error: BaseException | None = None

    def get(self, key: str):
        if self.error is not None:
            raise AssertionError(f"recording on {self.interp} failed") from self.error
        return self.results[key]


def _record_launched(run: Run) -> None:
    """record -- python record_known.py: launched; ends when the target exits."""
    tmp, interp = run.tmp, run.interp
    ready, out = tmp / "launch-ready.json", tmp / "launch.fkt"
    argv = ["record", "-r", RATE, "-o", str(out), "--"]
    try:
        r = flamekit(*argv, *known_argv(interp, ready, lifetime=LIFETIME_S), cwd=tmp)
    finally:
        info = json.loads(ready.read_text(encoding="utf-8")) if ready.exists() else None
        if info:
            kill(info["pid"])  # gone already, unless the recorder failed
    run.results["launch"] = (r, info, out)


def _record_attached(run: Run) -> None:
    """record -p on a record_known.py the test started: --nonblocking, and --gil."""
    tmp, interp = run.tmp, run.interp
    ready = tmp / "attach-ready.json"
    with Started(known_argv(interp, ready), ready) as target:
        for key, opts in (("nonblocking", ["--nonblocking"]), ("gil", ["--gil"])):
            out = tmp / f"{key}.fkt"
            argv = ["record", "-q", "-r", RATE, "-d", str(SHORT_S), "-o", str(out), *opts]
            r = flamekit(*argv, "-p", str(target.pid), cwd=tmp)
            run.results[key] = (r, target.info, out)
        run.results["alive_after"] = proc_state(target.pid)


def _record_counter(run: Run) -> None:
    """record -p PID -d 2 on a running counter; it must carry on afterwards."""
    tmp, interp = run.tmp, run.interp
    ready, out = tmp / "counter-ready.json", tmp / "counter.fkt"
    argv = [interp.path, str(COUNTER), str(ready)]
    with Started(argv, ready, stdout=subprocess.PIPE) as target:
        assert target.out is not None
        r = flamekit(
            "record", "-q", "-r", RATE, "-d", str(ATTACH_S), "-o", str(out), "-p", str(target.pid)
        )
        state = proc_state(target.pid)
        before = counter(target.out)
        time.sleep(0.3)
        after = counter(target.out)
        run.results["counter"] = (r, out, state, before, after)


def counter(lines: Lines) -> int:
    for line in reversed(lines.lines):
        if line.startswith("count "):
            return int(line.split()[1])
    return 0


def _run_all(run: Run) -> Run:
    try:
        _record_launched(run)
        _record_attached(run)
        _record_counter(run)
    except BaseException as exc:
        run.error = exc
    return run


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run]]:
    tmp = Path(tempfile.mkdtemp(prefix="flamekit-e2e-"))
    try:
        todo = []
        for interp in RECORDED:
            d = tmp / interp.id
            d.mkdir()
            todo.append(Run(interp, d))
        with ThreadPoolExecutor(PARALLEL) as pool:
            done = list(pool.map(_run_all, todo))
        yield {r.interp.id: r for r in done}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


interpreters = pytest.mark.parametrize("iid", [i.id for i in RECORDED])


@interpreters
def test_launched_stacks_lines_idle_gil_names(runs: dict[str, Run], iid: str) -> None:
    """The whole proof on one recording: every thread, every sample while it was ready."""
    r, info, out = runs[iid].get("launch")
    ok(r, f"flamekit record on {iid}")
    assert info is not None, "the target never got ready"
    trace = load(out)
    assert trace.header.mode["launched"] and trace.header.mode["pausing"]
    assert trace.header.pid == info["pid"]
    assert trace.header.python_version.startswith("{}.{}.".format(*BY_ID[iid].version))
    check_known_trace(trace, info, BY_ID[iid].version, lifetime=LIFETIME_S)


@interpreters
def test_launched_target_exit_is_a_normal_end(runs: dict[str, Run], iid: str) -> None:
    """The launched target exits by itself (status 0) mid-recording: a complete trace."""
    r, info, out = runs[iid].get("launch")
    ok(r)
    trace = load(out)
    assert not trace.truncated and trace.end is not None, trace.truncation
    assert trace.end.reason == "target-exited" and trace.end.error is None, trace.end
    assert trace.end.samples == len(trace)
    stderr = text(r.stderr)
    assert "target exited" in stderr and "exited with status" not in stderr, stderr


@interpreters
def test_progress_on_stderr_never_stdout(runs: dict[str, Run], iid: str) -> None:
    r, _, out = runs[iid].get("launch")
    assert ok(r) == ""  # the target prints nothing either
    lines = text(r.stderr).splitlines()
    assert any(re.match(r"flamekit: recording +\d", line) for line in lines), lines
    assert lines[-1].startswith(f"flamekit: wrote {out}: "), lines
    assert all(line.startswith("flamekit: ") for line in lines), lines


@interpreters
def test_nonblocking_same_stacks(runs: dict[str, Run], iid: str) -> None:
    r, info, out = runs[iid].get("nonblocking")
    ok(r, f"flamekit record --nonblocking on {iid}")
    trace = load(out)
    assert trace.header.mode["pausing"] is False
    check_known_trace(trace, info, BY_ID[iid].version)


@interpreters
def test_gil_only_keeps_the_holder(runs: dict[str, Run], iid: str) -> None:
    r, info, out = runs[iid].get("gil")
    ok(r, f"flamekit record --gil on {iid}")
    trace = load(out)
    assert trace.header.mode["gil_only"] is True and trace.header.mode["pausing"] is True
    assert len(trace) and all(trace.is_gil(i) for i in range(len(trace)))
    check_known_trace(trace, info, BY_ID[iid].version, gil_only=True)
    assert runs[iid].get("alive_after") not in ("", "t", "T", "Z")


@interpreters
def test_duration_stops_on_time(runs: dict[str, Run], iid: str) -> None:
    recordings = {
        "nonblocking": (SHORT_S, runs[iid].get("nonblocking")[::2]),
        "gil": (SHORT_S, runs[iid].get("gil")[::2]),
        "counter": (ATTACH_S, runs[iid].get("counter")[:2]),
    }
    for key, (seconds, (r, out)) in recordings.items():
        ok(r)
        trace = load(out)
        assert trace.end is not None and trace.end.reason == "duration", trace.end
        assert seconds <= trace.end.duration_ns / 1e9 < seconds + LATE_S, (key, trace.end)
        assert trace.times[-1] <= trace.end.duration_ns
        assert "duration reached" in text(r.stderr)


@interpreters
def test_attach_target_keeps_running(runs: dict[str, Run], iid: str) -> None:
    """record -p PID -d 2: the counter is sampled, and runs on, not stopped, afterwards."""
    r, out, state, before, after = runs[iid].get("counter")
    ok(r, f"flamekit record -p on {iid}")
    assert state not in ("", "t", "T", "Z"), f"target state {state!r} after recording"
    assert after > before > 0, f"counter {before} -> {after} after the recorder detached"
    trace = load(out)
    assert trace.end is not None and trace.end.reason == "duration"
    assert not trace.header.mode["launched"]
    profile = build_profile(trace, full_filenames=True)  # checked to the path
    names = set()
    for sid in set(trace.columns.stack):
        if sid in profile.stacks:
            names.update(profile.frames[f].name for f in profile.stacks[sid])
    assert {"main", "count_round", "busy"} <= names, names


# -- one interpreter: output naming, quiet ------------------------------------------------


def some(version: tuple[int, int]) -> Interpreter:
    return next(i for i in INTERPRETERS if i.version == version and not i.id.startswith("deb"))


def test_default_output_name_and_quiet(tmp_path: Path) -> None:
    """No -o: flamekit-<name>-<pid>-<time>.fkt in the cwd, named on stderr; -q: no progress."""
    interp = some((3, 12))
    cwd, ready = tmp_path / "cwd", tmp_path / "ready.json"
    cwd.mkdir()
    t0 = time.time()
    r = flamekit("record", "-q", "-d", "0.8", "--", *known_argv(interp, ready, 20), cwd=cwd)
    info = json.loads(ready.read_text()) if ready.exists() else None
    if info:
        kill(info["pid"])
    assert ok(r) == ""
    files = [p.name for p in cwd.iterdir()]
    assert len(files) == 1, files
    m = re.fullmatch(r"flamekit-record_known-(\d+)-(\d{8}-\d{6})\.fkt", files[0])
    assert m, files
    stamp = time.mktime(time.strptime(m.group(2), "%Y%m%d-%H%M%S"))
    assert t0 - 2 <= stamp <= time.time() + 1
    lines = text(r.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"flamekit: wrote {files[0]}: "), lines
    trace = load(cwd / files[0])
    assert trace.end is not None and trace.end.reason == "duration"
    # the launched program's pid (its ready file may not be written within the 0.8 s)
    assert int(m.group(1)) == trace.header.pid
    assert info is None or info["pid"] == trace.header.pid


# -- signals and the target ending ---------------------------------------------------------


#: Both modes wait for signals differently: pausing polls once a tick, non-blocking waits
#: for the next tick in the very call that catches them.
MODES = pytest.mark.parametrize("mode", [[], ["--nonblocking"]], ids=["pausing", "nonblocking"])


@MODES
def test_sigterm_in_attach_mode_ends_a_complete_trace(tmp_path: Path, mode: list[str]) -> None:
    interp = INTERPRETERS[-1]
    ready, out = tmp_path / "ready.json", tmp_path / "t.fkt"
    argv = [interp.path, str(COUNTER), str(ready)]
    with Started(argv, ready, stdout=subprocess.PIPE) as target:
        assert target.out is not None
        rec = subprocess.Popen(
            flamekit_argv("record", *mode, "-p", str(target.pid), "-r", RATE, "-o", str(out)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        err = Lines(rec.stderr)
        try:
            err.wait_for(r"^flamekit: recording ")
            rec.send_signal(signal.SIGTERM)
            rc = rec.wait(15)
        finally:
            if rec.poll() is None:
                rec.kill()
                rec.wait()
        stderr = "\n".join(err.join())
        assert rc == 0, stderr
        assert "Traceback" not in stderr and "interrupted" in stderr.splitlines()[-1], stderr
        assert rec.stdout is not None and rec.stdout.read() == b""
        state = proc_state(target.pid)
        assert state not in ("", "t", "T", "Z"), f"target state {state!r}"
        before = counter(target.out)
        time.sleep(0.3)
        assert counter(target.out) > before > 0
    trace = load(out)
    assert not trace.truncated and trace.end is not None, trace.truncation
    assert trace.end.reason == "interrupted" and trace.end.samples == len(trace) > 0


@MODES
def test_sigint_in_launch_mode_reaches_the_child(tmp_path: Path, mode: list[str]) -> None:
    """kill -INT to the recorder alone: the child gets it (its handler prints), the trace
    ends as interrupted."""
    interp = INTERPRETERS[0]
    ready, out = tmp_path / "ready.json", tmp_path / "t.fkt"
    rec = subprocess.Popen(
        flamekit_argv(
            "record",
            *mode,
            "-r",
            RATE,
            "-o",
            str(out),
            "--",
            interp.path,
            str(COUNTER),
            str(ready),
        ),
        stdout=subprocess.PIPE,  # the child's too: it inherits the recorder's
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    stdout, err = Lines(rec.stdout), Lines(rec.stderr)
    info = None
    try:
        info = wait_ready(ready, lambda: rec.poll() is None, what="the launched counter")
        err.wait_for(r"^flamekit: recording ")
        rec.send_signal(signal.SIGINT)
        rc = rec.wait(15)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        if info and proc_state(info["pid"]) not in ("", "Z"):
            kill(info["pid"])
            pytest.fail("the child was still running after the recorder ended")
    out_lines = stdout.join()
    stderr = "\n".join(err.join())
    assert rc == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert any(line.startswith("counter: KeyboardInterrupt after") for line in out_lines), (
        out_lines[-5:]
    )
    assert "exited with status" not in stderr, stderr
    trace = load(out)
    assert not trace.truncated and trace.end is not None, trace.truncation
    assert trace.end.reason == "interrupted", trace.end


def _default_sigint() -> None:  # runs in the child, before exec
    """SIGINT's default action for the recorder and so for the command it launches.

    A suite run as a background job (``nohup bash tests/run.sh &``) has SIGINT ignored,
    and an ignored signal stays ignored across fork and exec: the launched counter would
    never see the interrupt these tests are about."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _controlling_tty() -> None:  # runs in the child, before exec
    _default_sigint()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_ctrl_c_at_the_terminal(tmp_path: Path) -> None:
    """^C on the terminal: the kernel signals recorder and child together (one process
    group); the recorder must not pass on a second SIGINT (the child's handler would be
    interrupted by a KeyboardInterrupt traceback), and ends a complete trace. On a
    terminal the progress line is rewritten in place."""
    interp = some((3, 12))
    ready, out = tmp_path / "ready.json", tmp_path / "t.fkt"
    master, slave = pty.openpty()
    argv = flamekit_argv("record", "-r", RATE, "-o", str(out), "--")
    rec = subprocess.Popen(
        [*argv, interp.path, str(COUNTER), str(ready)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_controlling_tty,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    info = None
    try:
        info = wait_ready(ready, lambda: rec.poll() is None, what="the launched counter")
        deadline = time.monotonic() + 30
        while b"flamekit: recording" not in b"".join(chunks) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.write(master, b"\x03")  # the terminal's INTR character
        rc = rec.wait(15)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        if info and proc_state(info["pid"]) not in ("", "Z"):
            kill(info["pid"])
        reader.join(5)
        os.close(master)
    output = text(b"".join(chunks))
    assert rc == 0, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert output.count("counter: KeyboardInterrupt after") == 1, output[-2000:]
    assert "\rflamekit: recording" in output, output[-2000:]
    assert "interrupted" in output.strip().splitlines()[-1], output[-2000:]
    trace = load(out)
    assert not trace.truncated and trace.end is not None, trace.truncation
    assert trace.end.reason == "interrupted", trace.end


# -- accuracy -----------------------------------------------------------------------------

ACCURACY_RATE = "1000"
ACCURACY_S = "5"
#: Fewest samples for the shares to be meaningful to +-3 points: the binomial standard
#: deviation of a 25% share over 1500 samples is 1.1 points (fixed-rate sampling of short
#: random rounds does better than independent draws).
ACCURACY_MIN = 1500


@pytest.mark.parametrize("version", [(3, 10), (3, 14)], ids=["3.10", "3.14"])
def test_shares_within_3_points(tmp_path: Path, version: tuple[int, int]) -> None:
    """record_split.py spends 25% / 75% of its CPU in quarter / three_quarters."""
    interp = some(version) if version != (3, 14) else BY_ID["3.14"]
    ready, out = tmp_path / "ready.json", tmp_path / "split.fkt"
    with Started([interp.path, str(SPLIT), str(ready)], ready) as target:
        r = flamekit(
            "record", "-q", "-r", ACCURACY_RATE, "-d", ACCURACY_S, "-o", str(out),
            "-p", str(target.pid),
        )  # fmt: skip
    ok(r, "flamekit record of record_split.py")
    trace = load(out)
    profile = build_profile(trace, full_filenames=True)  # checked to the path
    counts = {"quarter": 0, "three_quarters": 0, "other": 0}
    kind: dict[int, str] = {}
    for sid in trace.columns.stack:
        k = kind.get(sid)
        if k is None:
            names = {profile.frames[f].name for f in profile.stacks[sid]}
            k = kind[sid] = next((n for n in ("quarter", "three_quarters") if n in names), "other")
        counts[k] += 1
    n = counts["quarter"] + counts["three_quarters"]
    assert n > 0, f"no samples of the split: {counts}, {text(r.stderr)}"
    if n < ACCURACY_MIN:  # a loaded machine: too few for the shares to say anything
        pytest.skip(f"only {n} samples of the split in {ACCURACY_S} s (this check needs "
                    f"{ACCURACY_MIN}): {text(r.stderr).strip()}")  # fmt: skip
    # the split loop is nearly all of the CPU; samples elsewhere (its driver, randint)
    # come out over their true share at call boundaries: 1-1.4% measured, so 5% leaves room
    assert counts["other"] < 0.05 * len(trace), counts
    share = 100 * counts["quarter"] / n
    assert abs(share - 25) <= 3, f"quarter has {share:.1f}% of {n} samples, expected 25 +- 3"


# -- bad input ----------------------------------------------------------------------------


def one_error_line(r: subprocess.CompletedProcess, code: int) -> str:
    err = text(r.stderr)
    assert "Traceback" not in err, err
    assert r.returncode == code, f"exit {r.returncode}, expected {code}: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flamekit: error: "), lines
    assert r.stdout == b""
    return lines[0]


def no_recording_left(d: Path) -> None:
    """Nothing in ``d`` pretends to be a complete recording."""
    for p in d.iterdir():
        if p.suffix == ".fkt":
            info = flamekit("info", str(p))
            assert "truncated" in text(info.stdout) + text(info.stderr), p


def gone_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def empty_cwd(tmp_path: Path) -> Path:
    d = tmp_path / "cwd"
    d.mkdir()
    return d


def test_no_such_pid(empty_cwd: Path) -> None:
    pid = gone_pid()
    line = one_error_line(flamekit("record", "-p", str(pid), "-d", "1", cwd=empty_cwd), 1)
    assert f"no process with pid {pid}" in line and "ps" in line
    assert not list(empty_cwd.iterdir())
    r = flamekit("record", "-p", str(pid), "-o", "x.fkt", cwd=empty_cwd)
    one_error_line(r, 1)
    no_recording_left(empty_cwd)


def test_not_a_python_process(empty_cwd: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        r = flamekit("record", "-p", str(sleeper.pid), "-d", "1", cwd=empty_cwd)
        line = one_error_line(r, 1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert f"pid {sleeper.pid}" in line and "not a CPython process" in line, line
    assert "python" in line.split("not a CPython process", 1)[1].lower(), f"no remedy in {line!r}"
    no_recording_left(empty_cwd)
    assert not list(empty_cwd.iterdir())


NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


def test_permission_denied(tmp_path: Path) -> None:
    """An unprivileged recorder against a root-owned Python: one line, the remedy."""
    assert os.geteuid() == 0, "this test switches to user nobody: run the suite as root"
    probe = subprocess.run(
        [*NOBODY, sys.executable, "-c", "import flamekit.cli"], capture_output=True
    )
    assert probe.returncode == 0, (
        "user nobody cannot run flamekit from this virtual environment: " + text(probe.stderr)
    )
    cwd = Path(tempfile.mkdtemp(prefix="flamekit-nobody-"))  # pytest's tmp is 0700
    try:
        cwd.chmod(0o777)
        ready = tmp_path / "ready.json"
        with Started(known_argv(some((3, 12)), ready), ready) as target:
            r = subprocess.run(
                [*NOBODY, *flamekit_argv("record", "-p", str(target.pid), "-d", "1")],
                capture_output=True,
                cwd=cwd,
                timeout=60,
            )
            line = one_error_line(r, 1)
            assert proc_state(target.pid) not in ("", "t", "T")
        assert "permission denied" in line and "root" in line, line
        assert not list(cwd.iterdir())
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def test_unwritable_output_stops_the_launched_command(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    out = tmp_path / "no-such-dir" / "t.fkt"
    argv = ["record", "-o", str(out), "--", *known_argv(some((3, 12)), ready)]
    line = one_error_line(flamekit(*argv), 1)
    assert str(out) in line and "cannot write" in line, line
    time.sleep(0.5)
    if ready.exists():  # it got that far before it was stopped; it must not run on
        pid = json.loads(ready.read_text())["pid"]
        state = proc_state(pid)
        kill(pid)
        assert state in ("", "Z"), f"the launched command still runs ({state})"
    else:
        assert not ready.exists()


def test_launched_command_ends_before_attach(empty_cwd: Path) -> None:
    line = one_error_line(flamekit("record", "--", "true", cwd=empty_cwd), 1)
    assert "exited (status 0) before flamekit could attach" in line, line
    assert not list(empty_cwd.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [
        (["-r", "0", "-p", "1"], ["rate", "0"]),
        (["-r", "nan", "-p", "1"], ["rate"]),
        (["-r", "1e-7", "-p", "1"], ["rate", "1e-7", "at least 1e-06"]),
        (["-r", "fast", "-p", "1"], ["rate", "fast"]),
        (["-d", "-1", "-p", "1"], ["duration", "-1"]),
        (["-d", "0", "-p", "1"], ["duration"]),
        (["-p", "1", "--", "python3", "-c", "pass"], ["not both"]),
        ([], ["-p PID", "command"]),
        (["-p", "abc"], ["pid", "abc"]),
        (["-p", "0"], ["pid"]),
    ],
    ids=[
        "rate0",
        "rate-nan",
        "rate-below-the-format's",
        "rate-word",
        "duration-1",
        "duration0",
        "both",
        "neither",
        "pid-word",
        "pid0",
    ],
)
def test_usage_errors(empty_cwd: Path, args: list[str], words: list[str]) -> None:
    line = one_error_line(flamekit("record", *args, cwd=empty_cwd), 2)
    for w in words:
        assert w in line, line
    assert not list(empty_cwd.iterdir())

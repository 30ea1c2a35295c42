"""Helpers shared by tests/test_reliability_*.py (this module holds no tests).

Everything goes through the real command line (``python -m flamekit ...``) and real
target programs (tests/targets/rel_*.py), the way a user attaches flamekit to a process
that matters to them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from flamekit.trace import Trace, load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = HERE / "targets"
REL_TARGET = TARGETS / "rel_target.py"
PY = sys.executable

SUMMARY = re.compile(
    r"flamekit: wrote (?P<path>.+): (?P<samples>[\d,]+) samples in (?P<secs>[\d.]+) s "
    r"\((?P<hz>[\d,.]+) Hz effective, (?P<errors>[\d,]+) sampling errors; (?P<how>[^)]*)\)"
)


def flamekit_argv(*args: object) -> list[str]:
    return [PY, "-m", "flamekit", *map(str, args)]


def run_flamekit(*args: object, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("cwd", ROOT)
    return subprocess.run(flamekit_argv(*args), capture_output=True, timeout=timeout, **kw)


def read_ready(stream) -> int:
    """The pid from a target's "ready PID" line (fails on anything else)."""
    line = stream.readline()
    if isinstance(line, bytes):
        line = line.decode()
    assert line.startswith("ready "), f"target did not start: {line!r}"
    return int(line.split()[1])


def start_target(mode: str, state: Path, *args: object, python: str = PY, **kw) -> tuple:
    """(Popen, pid) of rel_target.py MODE STATE ARGS, once it printed "ready"."""
    kw.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.Popen(
        [python, str(REL_TARGET), mode, str(state), *map(str, args)], text=True, **kw
    )
    return proc, read_ready(proc.stdout)


def start_record(*args: object, **kw) -> subprocess.Popen:
    """``flamekit record ARGS`` in the background (stderr piped; stdout piped, text)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("cwd", ROOT)
    return subprocess.Popen(flamekit_argv("record", *args), text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str, str]:
    """Wait for a process; (exit code, stdout, stderr). Kills it if it hangs (and fails)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running after {timeout} s; stderr: {err}") from None
    return proc.returncode, out or "", err or ""


def kill_quietly(*procs: subprocess.Popen | None) -> None:
    for p in procs:
        if p is None:
            continue
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass


def wait_until(cond, timeout: float = 15.0, interval: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(interval)
    return True


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def tracer_pid(pid: int) -> int:
    return int(proc_status(pid).get("TracerPid", "0") or 0)


def thread_states(pid: int) -> dict[int, str]:
    """State letter of every thread (from /proc/PID/task/TID/stat)."""
    out = {}
    try:
        names = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for name in names:
        try:
            with open(f"/proc/{pid}/task/{name}/stat") as f:
                out[int(name)] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return out


def counter(path: Path) -> int:
    for _ in range(200):
        try:
            return int(path.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            time.sleep(0.001)
    raise AssertionError(f"unreadable counter file {path}")


def assert_free_and_running(pid: int, state: Path, timeout: float = 10.0) -> None:
    """The target is not traced, no thread is stopped, and its counter moves on."""
    assert wait_until(lambda: tracer_pid(pid) == 0, timeout), f"{pid} still traced"
    assert wait_until(lambda: not set(thread_states(pid).values()) & {"t", "T"}, timeout), (
        f"target left stopped: {thread_states(pid)}"
    )
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] in "RSD", "process state"
    before = counter(state)
    assert wait_until(lambda: counter(state) > before + 2, timeout), "target makes no progress"


def summary(stderr: str) -> re.Match:
    assert "Traceback" not in stderr, stderr
    m = SUMMARY.search(stderr)
    assert m, f"no summary line in: {stderr!r}"
    return m


def one_error_line(stderr: str) -> str:
    """The single line a failing command printed (no traceback, nothing else)."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {stderr!r}"
    assert lines[0].startswith("flamekit: error: "), lines[0]
    return lines[0]


def check_complete(path: Path | str, reason: str) -> Trace:
    """The trace is whole: END with ``reason``, its counts agree, ``info`` reads it clean."""
    tr = load(path)
    assert not tr.truncated, tr.truncation
    assert tr.end is not None and tr.end.reason == reason, tr.end
    assert tr.end.samples == len(tr)
    info = run_flamekit("info", path)
    assert info.returncode == 0, info.stderr
    assert info.stderr == b"", info.stderr  # no truncation warning
    assert f"complete (ended: {reason}" in info.stdout.decode()
    return tr

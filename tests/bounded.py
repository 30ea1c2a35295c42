"""Running one ``flamekit`` command in a bounded child, as hostile-input tests need.

The child is forked from the test process (warm: every module is already imported), so a
command costs its own work only. It runs under RLIMIT_AS (its size at the fork plus a
given number of MiB), RLIMIT_FSIZE and a wall-clock timeout, and reports its exit status
(``-N`` for a signal, 99 for an exception that escaped: a traceback), its output, how
long it took and how much memory it touched beyond what it was forked with.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

from flamekit.cli import main as cli_main

TIMEOUT_S = 30.0
MEMORY_MB = 1024
FILE_CAP = 256 << 20


@dataclass
class Ran:
    argv: list[str]
    code: int  # exit status; -N for a signal
    stdout: bytes
    stderr: str
    seconds: float
    grew_mb: float = 0.0  #: peak RSS above the RSS it was forked with, MiB

    def one_error_line(self) -> str:
        """The one stderr line of a refusal (no traceback), with its text."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in self.stderr, self.stderr[-2000:]
        assert lines[0].startswith("flamekit: error: "), lines[0]
        return lines[0]


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def run_bounded(
    argv: list[str],
    timeout: float = TIMEOUT_S,
    memory_mb: int = MEMORY_MB,
    file_cap: int = FILE_CAP,
) -> Ran:
    """``flamekit ARGV`` in a forked child: RLIMIT_AS = its size now + ``memory_mb``,
    output files capped at ``file_cap`` bytes, killed after ``timeout`` s."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    cap = _status("VmSize") + (memory_mb << 20)
    rss = _status("VmRSS")
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 98
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8")
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_cap, file_cap))
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                cli_main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - report any escape as a traceback
                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    deadline = t0 + timeout
    status = usage = None
    while status is None:
        got, st_, ru = os.wait4(pid, os.WNOHANG)
        if got:
            status, usage = st_, ru
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
        else:
            time.sleep(0.002)
    seconds = time.monotonic() - t0
    out.seek(0)
    err.seek(0)
    data, text = out.read(), err.read().decode("utf-8", "replace")
    out.close()
    err.close()
    grew = max(0.0, (usage.ru_maxrss * 1024 - rss) / (1 << 20)) if usage else 0.0
    return Ran(argv, os.waitstatus_to_exitcode(status), data, text, seconds, grew)


def run_fresh(
    argv: list[str], timeout: float = 120.0, memory_mb: int = 2048
) -> tuple[int, str, float]:
    """(exit status, stderr, peak RSS in MiB) of ``python -m flamekit ARGV`` as a fresh
    process under RLIMIT_AS (``memory_mb``): unlike a forked child, it cannot reuse the
    test's own freed memory, so its peak is all its own."""
    cap = memory_mb << 20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flamekit", *argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=limit,
        )
        deadline = time.monotonic() + timeout
        while True:
            got, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if got:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return os.waitstatus_to_exitcode(status), text, usage.ru_maxrss / 1024


def peak_rss_mb(
    argv: list[str], timeout: float = 120.0, memory_mb: int = 2048
) -> tuple[int, float]:
    """(exit status, peak RSS in MiB) of a fresh ``flamekit ARGV`` (:func:`run_fresh`)."""
    code, _, peak = run_fresh(argv, timeout, memory_mb)
    return code, peak

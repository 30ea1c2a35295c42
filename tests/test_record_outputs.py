"""Where ``flamekit record -o`` writes, as root: never through a planted link, never over
a device, a FIFO or /dev/stdout as if they were files, a header on disk at once.

Device nodes and planted links are made in a temporary directory (:mod:`rootfs`).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from pythons import recordable
from rootfs import NODE_MODE, ROOT_ONLY, assert_refused_and_intact, node, one_line, planted_link

from flamekit.trace import TraceReader, load

TARGET_CODE = "import time\nend = time.time() + 0.6\nwhile time.time() < end: sum(range(500))"


def record(out: str, *extra: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "-r", "200", "-o", out, *extra,
         "--", recordable()[-1].path, "-c", TARGET_CODE],
        capture_output=True, timeout=60, **kw,
    )  # fmt: skip


@ROOT_ONLY
def test_a_link_planted_in_a_sticky_directory_is_not_followed(tmp_path: Path) -> None:
    link, secret = planted_link(tmp_path, "run.fkt")
    assert_refused_and_intact(one_line(record(str(link)), 1), link, secret)


@ROOT_ONLY
def test_our_own_link_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "runs" / "1.fkt"
    real.parent.mkdir()
    link = tmp_path / "latest.fkt"
    link.symlink_to(real)
    r = record(str(link))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and load(real).end is not None


@ROOT_ONLY
def test_a_character_device_is_written_in_place(tmp_path: Path) -> None:
    null = node(tmp_path / "null", 1, 3)
    r = record(str(null))
    assert r.returncode == 0, r.stderr
    st = null.stat()
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == NODE_MODE


@ROOT_ONLY
def test_a_full_device_fails_in_one_line_and_stays(tmp_path: Path) -> None:
    full = node(tmp_path / "full", 1, 7)
    err = one_line(record(str(full)), 1)
    assert str(full) in err and "no space left" in err.lower()
    st = full.stat()
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == NODE_MODE


def test_a_fifo_gets_the_trace_streamed(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = record(str(fifo))
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    copy = tmp_path / "copy.fkt"
    copy.write_bytes(got[0])
    trace = load(copy)
    assert trace.end is not None and len(trace) > 0


def test_dev_stdout_gets_the_trace(tmp_path: Path) -> None:
    r = record("/dev/stdout")
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "copy.fkt"
    copy.write_bytes(r.stdout)
    assert load(copy).end is not None


def test_what_cannot_take_a_trace_is_refused(tmp_path: Path) -> None:
    import socket

    sock = tmp_path / "socket"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    err = one_line(record(str(sock)), 1)
    assert "a socket" in err and str(sock) in err
    err = one_line(record(str(tmp_path)), 2)  # click's own check, a usage error
    assert "is a directory" in err


def test_a_recorder_killed_at_once_leaves_a_readable_trace_or_none(tmp_path: Path) -> None:
    """SIGKILL as soon as the trace appears at its path: it always begins with a whole
    header (a 0-byte file was left in 3 of 15 tries)."""
    target = subprocess.Popen([recordable()[-1].path, "-c", "while True: sum(range(500))"])
    try:
        for n in range(15):
            out = tmp_path / f"run{n}.fkt"
            rec = subprocess.Popen(
                [sys.executable, "-m", "flamekit", "record", "-q", "-p", str(target.pid),
                 "-o", str(out)],
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline and rec.poll() is None:
                time.sleep(0.0005)
            rec.send_signal(signal.SIGKILL)
            rec.wait()
            header = next(iter(TraceReader(out)))
            assert header.pid == target.pid
        assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".fkt")]
    finally:
        target.kill()
        target.wait()

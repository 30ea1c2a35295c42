"""Where ``convert -o`` and ``diff -o`` write, as root: a device or a FIFO is a stream
written in place (as ``-o -`` writes stdout), never replaced by a regular file, never
chmod'ed; a link another user planted in a sticky directory is refused.

Device nodes and planted links are made in a temporary directory (:mod:`rootfs`).
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rootfs import NODE_MODE, ROOT_ONLY, assert_refused_and_intact, node, one_line, planted_link

from flamekit.trace.synthetic import write_synthetic

#: Each command writing a file with -o: (arguments before -o, given the trace path).
WRITERS = {
    "convert-svg": lambda t: ["convert", t, "--to", "svg"],
    "convert-collapsed": lambda t: ["convert", t, "--to", "collapsed"],
    "convert-pprof": lambda t: ["convert", t, "--to", "pprof"],
    "diff-svg": lambda t: ["diff", t, t, "--to", "svg"],
    "diff-table": lambda t: ["diff", t, t],
}


def flamekit(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, timeout=120, **kw
    )


def assert_untouched_device(path: Path, rdev: int) -> None:
    st = path.lstat()
    assert stat.S_ISCHR(st.st_mode), f"{path} is no longer a character device"
    assert stat.S_IMODE(st.st_mode) == NODE_MODE and st.st_rdev == rdev


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("targets") / "run.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=400, stacks=20, threads=2)
    return p


@ROOT_ONLY
@pytest.mark.parametrize("cmd", WRITERS)
def test_a_null_device_is_written_in_place(trace: Path, tmp_path: Path, cmd: str) -> None:
    null = node(tmp_path / "null", 1, 3)
    r = flamekit(*WRITERS[cmd](str(trace)), "-o", str(null))
    assert r.returncode == 0, r.stderr.decode()
    assert_untouched_device(null, os.makedev(1, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary left


@ROOT_ONLY
@pytest.mark.parametrize("cmd", WRITERS)
def test_a_full_device_fails_in_one_line_and_stays(trace: Path, tmp_path: Path, cmd: str) -> None:
    full = node(tmp_path / "full", 1, 7)
    err = one_line(flamekit(*WRITERS[cmd](str(trace)), "-o", str(full)), 1)
    assert str(full) in err and "no space left" in err.lower()
    assert_untouched_device(full, os.makedev(1, 7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.mark.parametrize("cmd", ["convert-svg", "convert-pprof", "diff-svg"])
def test_a_fifo_gets_the_output_streamed(trace: Path, tmp_path: Path, cmd: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o640)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = flamekit(*WRITERS[cmd](str(trace)), "-o", str(fifo))
    reader.join(30)
    assert r.returncode == 0, r.stderr.decode()
    st = fifo.lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    # What came through the pipe is the whole output, the same bytes as -o - gives.
    same = flamekit(*WRITERS[cmd](str(trace)), "-o", "-")
    assert got and got[0] == same.stdout
    if cmd == "convert-pprof":
        assert gzip.decompress(got[0])
    else:
        assert got[0].rstrip().endswith(b"</svg>")


def test_dev_stdout_is_written_like_dash(trace: Path, tmp_path: Path) -> None:
    """``/dev/stdout`` is a link to the magic link ``/proc/self/fd/1`` (here a pipe:
    capture_output). The test makes the same link in its temporary directory: before the
    fix, the link was replaced by a regular file holding the output; given the real
    /dev/stdout as root, the machine's /dev/stdout was (so the real one is never used
    here: a regression would replace it again)."""
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    r = flamekit("convert", str(trace), "--to", "collapsed", "-o", str(stdout))
    assert r.returncode == 0, r.stderr.decode()
    assert stdout.is_symlink() and os.readlink(stdout) == "/proc/self/fd/1"
    same = flamekit("convert", str(trace), "--to", "collapsed", "-o", "-")
    assert r.stdout == same.stdout and r.stdout.count(b"\n") > 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout"]


@ROOT_ONLY
@pytest.mark.parametrize("cmd", ["convert-svg", "diff-table"])
def test_a_link_planted_in_a_sticky_directory_is_refused(
    trace: Path, tmp_path: Path, cmd: str
) -> None:
    link, secret = planted_link(tmp_path, "out.svg")
    err = one_line(flamekit(*WRITERS[cmd](str(trace)), "-o", str(link)), 1)
    assert_refused_and_intact(err, link, secret)


def test_a_regular_file_is_still_replaced_whole_with_the_usual_mode(
    trace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.svg"
    out.write_bytes(b"old")
    out.chmod(0o600)
    r = flamekit(
        "convert", str(trace), "--to", "svg", "-o", str(out), preexec_fn=lambda: os.umask(0o022)
    )
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes().rstrip().endswith(b"</svg>")
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.svg"]

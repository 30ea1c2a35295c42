"""What the tests of where outputs go share: device nodes, a planted link, one error line.

Device nodes are made with mknod in a temporary directory (never the machine's own
/dev): a character device with /dev/null's numbers (1, 3) swallows what it is given, one
with /dev/full's (1, 7) fails every write with ENOSPC. Each gets an unusual mode, so a
test sees that nothing chmod'ed it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown)")
NODE_MODE = 0o620
SECRET = b"root's own data\n"


def one_line(r: subprocess.CompletedProcess, code: int) -> str:
    """The one stderr line of a command that failed with ``code``, never a traceback."""
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def node(path: Path, major: int, minor: int) -> Path:
    """A character device with the given numbers, mode :data:`NODE_MODE`."""
    os.mknod(path, NODE_MODE | stat.S_IFCHR, os.makedev(major, minor))
    os.chmod(path, NODE_MODE)  # mknod's mode is cut by the umask
    return path


def planted_link(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """(link, secret): a link owned by nobody in a sticky, world-writable directory (like
    /tmp) pointing at root's own 0600 file."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o1777)
    link = public / name
    link.symlink_to(secret)
    os.lchown(link, 65534, 65534)  # planted by nobody
    return link, secret


def assert_refused_and_intact(err: str, link: Path, secret: Path) -> None:
    """The error names the link; the file it points to and the directory are as they were."""
    assert str(link) in err and "symbolic link" in err
    assert secret.read_bytes() == SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert link.is_symlink() and [p.name for p in link.parent.iterdir()] == [link.name]

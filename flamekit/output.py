"""Writing a command's output: atomically to a file, or streamed to stdout for ``-o -``.

A profile that stops half-way looks complete to the tool that opens it (a folded file is
just fewer lines; a flame graph just narrower), so a file output is written to a
temporary file beside the target and renamed over it only once every byte is written and
flushed. Any failure, including one raised by the converter mid-stream or Ctrl-C,
removes the temporary file and leaves the target as it was. The final file gets the mode
a plain ``open()`` would have given it (0666 less the user's umask), not mkstemp's 0600,
and never the world's write bit: a profile names a program's code and files, and a
world-writable one is an invitation to swap it for another.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Iterable
from typing import BinaryIO

from flamekit.errors import OutputError

STDOUT = "-"


def _umask() -> int:
    """The process umask, read without changing it where Linux lets us."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # set-and-restore: brief, and the CLI is single-threaded
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode every output file gets: the user's umask, and never world-writable."""
    return 0o666 & ~_umask() & ~0o002


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOENT:
        return "directory does not exist"
    if exc.errno == errno.ENOTDIR:
        return "a parent is not a directory"
    return exc.strerror or str(exc)


def write_output(path: str, chunks: Iterable[bytes], stdout: BinaryIO | None = None) -> int:
    """Write ``chunks`` to ``path`` atomically, or to stdout when ``path`` is ``-``.

    Returns the number of bytes written. Raises OutputError (exit 1) with one line for any
    path that cannot be written; errors from producing the chunks propagate unchanged,
    after the temporary file is removed.
    """
    if path == STDOUT:
        out = stdout if stdout is not None else sys.stdout.buffer
        total = 0
        for chunk in chunks:
            out.write(chunk)
            total += len(chunk)
        out.flush()
        return total

    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None
    total = 0
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    total += len(chunk)
                f.flush()
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), file_mode())
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_why(exc)}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return total


def default_output_path(input_path: str, extension: str) -> str:
    """The input's path with its ``.fkt`` suffix (if any) replaced by ``extension``."""
    base = input_path[:-4] if input_path.endswith(".fkt") else os.path.splitext(input_path)[0]
    return (base or input_path) + extension

"""Writing a command's output: atomically to a file, or streamed to stdout for ``-o -``
and to a device or a FIFO named by ``-o``.

A profile that stops half-way looks complete to the tool that opens it (a folded file is
just fewer lines; a flame graph just narrower), so a file output is written to a
temporary file beside the target and renamed over it only once every byte is written and
flushed. What already exists at the path and is not a regular file is never replaced:
``convert -o /dev/null`` as root once replaced the device with a file
(:func:`resolve_output`). Any failure, including one raised by the converter mid-stream or Ctrl-C,
removes the temporary file and leaves the target as it was. The final file gets the mode
a plain ``open()`` would have given it (0666 less the user's umask), not mkstemp's 0600,
and never the world's write bit: a profile names a program's code and files, and a
world-writable one is an invitation to swap it for another.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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


class OutputTooLarge(OutputError):
    """An output over its size budget (``--max-output``): refused in one line."""


def write_output(
    path: str,
    chunks: Iterable[bytes],
    stdout: BinaryIO | None = None,
    max_output: int | None = None,
) -> int:
    """Write ``chunks`` to ``path``, or to stdout when ``path`` is ``-``.

    Where :func:`resolve_output` says: a regular file (or none yet) gets a new file,
    renamed onto the path once every byte is written; a character device or a FIFO
    (``/dev/null``, ``/dev/stdout``, a named pipe) is streamed into where it is, as
    ``-o -`` streams stdout, and is never replaced or chmod'ed. Returns the number of
    bytes written. Raises OutputError (exit 1) with one line for any path that cannot be
    written; errors from producing the chunks propagate unchanged, after the new file is
    removed. ``max_output``: OutputTooLarge once more than this many bytes come (the
    formats refuse an output before making it when their estimate is over: this is the
    backstop for an estimate that fell short); a new file is then removed.
    """
    if path == STDOUT:
        out = stdout if stdout is not None else sys.stdout.buffer
        total = 0
        for chunk in _capped(chunks, max_output, path):
            out.write(chunk)
            total += len(chunk)
        out.flush()
        return total

    new = NewOutput(path, file_mode())
    total = 0
    try:
        f = new.file
        for chunk in _capped(chunks, max_output, path):
            f.write(chunk)
            total += len(chunk)
        f.flush()
        if new.kind == NEW_FILE:
            os.fsync(f.fileno())
        new.publish()
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None
    finally:
        new.close()
    return total


def _capped(chunks: Iterable[bytes], limit: int | None, path: str) -> Iterator[bytes]:
    """``chunks``, or OutputTooLarge before the one that would pass ``limit`` bytes."""
    if limit is None:
        yield from chunks
        return
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            where = "stdout" if path == STDOUT else path
            raise OutputTooLarge(
                f"cannot write {where}: the output passed its {limit:,}-byte budget while "
                "being written (--max-output raises it)"
            )
        yield chunk


def refuse_inputs(path: str, inputs: Sequence[str]) -> None:
    """OutputError if ``path`` is one of the input traces: an output never replaces what it
    was made from (the trace would be lost for a flame graph)."""
    if path == STDOUT or not os.path.exists(path):
        return
    for src in inputs:
        if os.path.exists(src) and os.path.samefile(path, src):
            what = "the input trace" if len(inputs) == 1 else "an input trace"
            raise OutputError(f"cannot write {path}: it is {what}")


def default_output_path(input_path: str, extension: str) -> str:
    """The input's path with its ``.fkt`` suffix (if any) replaced by ``extension``."""
    base = input_path[:-4] if input_path.endswith(".fkt") else os.path.splitext(input_path)[0]
    return (base or input_path) + extension


# -- where an output goes: a new file, or a stream that already exists ------------------

#: What an output path turned out to be.
NEW_FILE = "new-file"  #: absent or a regular file: a new file is renamed onto it
STREAM = (
    "stream"  #: a character device or a FIFO (/dev/null, /dev/stdout, a pipe): written in place
)


def resolve_output(path: str) -> tuple[str, str]:
    """(kind, the path to write) for an output named ``path``, or OutputError.

    Whatever existed at ``path`` is never chmod'ed, truncated as a file or removed unless
    it is a regular file being replaced by a new one: as root, ``-o /dev/full`` once
    deleted /dev/full, and a device node given as ``-o`` was made 0644. Character devices
    and FIFOs are streams, written where they are. A symbolic link is followed only where
    the kernel's protected_symlinks rule would follow it for us (not a link another user
    planted in a sticky, world-writable directory such as /tmp, which would make root
    overwrite the file it points to); block devices, directories and sockets are refused.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return NEW_FILE, path
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None
    if stat.S_ISLNK(st.st_mode):
        if not _may_follow(path, st):
            raise OutputError(
                f"cannot write {path}: it is a symbolic link owned by another user in a "
                "sticky, world-writable directory; name the file it points to instead"
            )
        try:
            st = os.stat(path)  # the kernel follows /dev/stdout's magic link to a pipe too
        except FileNotFoundError:
            return NEW_FILE, os.path.realpath(path)  # dangling: the file it names is made
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_why(exc)}") from None
        if stat.S_ISREG(st.st_mode):
            return NEW_FILE, os.path.realpath(path)
    if stat.S_ISREG(st.st_mode):
        return NEW_FILE, path
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return STREAM, path
    what = {stat.S_IFDIR: "a directory", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
    raise OutputError(
        f"cannot write {path}: it is {what.get(stat.S_IFMT(st.st_mode), 'not a regular file')}"
    )


def _may_follow(link: str, st: os.stat_result) -> bool:
    """fs.protected_symlinks: a link in a sticky, world-writable directory is followed
    only by its owner, or when the directory's owner owns the link too."""
    parent = os.stat(os.path.dirname(os.path.abspath(link)) or ".")
    sticky_public = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    return not sticky_public or st.st_uid in (os.geteuid(), parent.st_uid)


class NewOutput:
    """An output being written: a new file created beside its path and renamed onto it by
    :meth:`publish`, or a stream written in place (see :func:`resolve_output`).

    Until it is published the path is untouched, so a reader never finds a file there that
    is shorter than what the writer meant to be its first readable part (a trace's header).
    """

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.kind, self.target = resolve_output(path)
        self._tmp: str | None = None
        try:
            if self.kind == STREAM:
                fd = os.open(self.target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
            else:
                fd, self._tmp = tempfile.mkstemp(
                    dir=os.path.dirname(os.path.abspath(self.target)),
                    prefix=f".{os.path.basename(self.target)}.",
                    suffix=".tmp",
                )
                os.fchmod(fd, mode)  # our own new file: mkstemp's 0600, or wider if asked
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {path}: {_why(exc)}") from None
        self.file: BinaryIO = os.fdopen(fd, "wb")

    @property
    def published(self) -> bool:
        return self._tmp is None

    def publish(self) -> None:
        """Flush what was written and put the file at its path (a stream: flush only)."""
        self.file.flush()
        if self._tmp is not None:
            os.replace(self._tmp, self.target)
            self._tmp = None

    def discard(self) -> None:
        """Remove the new file if it was never published; a stream is left as it is."""
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        self.discard()

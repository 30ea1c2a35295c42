"""The descendants of a process, found as they come: ``record --subprocesses``.

The kernel lists each thread's children in ``/proc/PID/task/TID/children``: a process
started by any thread of a process we follow appears there until it exits or its parent
does (then it is reparented, out of this tree, and only what we already follow keeps it).
Asking every followed process is a directory listing and a read per thread; the
``children`` files are kept open and re-read with pread (one syscall, not three: a tree of
a master and 8 workers took 224 us an ask with open/read/close, about 100 with pread).
The recorder asks every :data:`POLL_S`, not every tick, which is what "cheap" means here
(``bench/tree_discovery.py`` measures it).

Nothing here knows CPython: which descendants are Pythons is the recorder's question.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

#: How often the tree is asked for new processes: a child that runs Python for 0.2 s is
#: seen within this (and its attach), well inside its life.
POLL_S = 0.02
#: Most processes followed: a fork bomb is not a process tree worth the recorder's CPU.
MAX_PROCESSES = 4096
#: Most ``children`` files kept open; past it they are opened for each read.
MAX_OPEN = 1024
#: Kept files are reopened every this many asks (1 s): the file of a thread that ended
#: reads empty, not as an error, so a new thread given the same tid (the tid space
#: wrapped) would be read through the old one's until then.
REOPEN_EVERY = 50


class ProcessTree:
    """The processes descended from a root, as far as they have been seen: each
    :meth:`poll` returns the ones new since the last."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._fds: dict[int, dict[int, int]] = {}  # pid -> tid -> open children file
        self._open = 0
        self._asks = 0
        self.known: set[int] = {root}
        self._asked: set[int] = {root}  # processes whose children we ask for
        #: pid -> start time of a process that ended: its parent lists it until it reaps
        #: it, and only a new process of that pid (another start time) is new
        self._ended: dict[int, int | None] = {}

    def poll(self) -> list[int]:
        """Descendants not seen before, parents before their children."""
        self._asks += 1
        if self._asks % REOPEN_EVERY == 0:
            self.close()
        new: list[int] = []
        queue = list(self._asked)
        while queue and len(self.known) < MAX_PROCESSES:
            parent = queue.pop()
            for child in self._children(parent):
                if child in self.known:
                    continue
                if child in self._ended:
                    if start_ticks(child) == self._ended[child]:
                        continue  # the ended one, not yet reaped
                    del self._ended[child]
                self.known.add(child)
                self._asked.add(child)
                new.append(child)
                queue.append(child)  # its children, started before we saw it
        return new

    def forget(self, pids: Iterable[int]) -> None:
        """Processes that ended: their children, if any live on, were reparented away;
        a pid that comes back for a new process is seen anew."""
        for pid in pids:
            self._close(pid)
            if pid in self.known:
                self.known.discard(pid)
                self._asked.discard(pid)
                if len(self._ended) >= MAX_PROCESSES:
                    self._ended.clear()
                self._ended[pid] = start_ticks(pid)

    def close(self) -> None:
        """Close the files kept open (the tree can still be asked: they reopen)."""
        for pid in list(self._fds):
            self._close(pid)

    def _children(self, pid: int) -> list[int]:
        """The children of every thread of ``pid`` (empty if it is gone)."""
        base = f"/proc/{pid}/task"
        try:
            tids = [int(t) for t in os.listdir(base)]
        except OSError:
            self._close(pid)
            return []
        fds = self._fds.setdefault(pid, {})
        if len(fds) > len(tids):
            live = set(tids)
            for tid in [t for t in fds if t not in live]:
                self._drop(fds, tid)
        out: list[int] = []
        for tid in tids:
            data = self._read(fds, tid, f"{base}/{tid}/children")
            if data:
                out += map(int, data.split())
        return out

    def _read(self, fds: dict[int, int], tid: int, path: str) -> bytes | None:
        fd = fds.get(tid)
        if fd is not None:
            try:
                return os.pread(fd, 1 << 16, 0)
            except OSError:  # that thread ended (and its tid came back): open anew
                self._drop(fds, tid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = os.pread(fd, 1 << 16, 0)
        except OSError:
            data = None
        if self._open < MAX_OPEN and data is not None:
            fds[tid] = fd
            self._open += 1
        else:
            os.close(fd)
        return data

    def _drop(self, fds: dict[int, int], tid: int) -> None:
        os.close(fds.pop(tid))
        self._open -= 1

    def _close(self, pid: int) -> None:
        for fd in self._fds.pop(pid, {}).values():
            os.close(fd)
            self._open -= 1


def start_ticks(pid: int) -> int | None:
    """/proc/PID/stat's start time (clock ticks since boot), None if there is no process:
    what tells two processes of one pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None

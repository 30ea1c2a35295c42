"""The descendants of a process, found as they come: ``record --subprocesses``.

The kernel lists each thread's children in ``/proc/PID/task/TID/children``: a process
started by any thread of a process we follow appears there until it exits or its parent
does (then it is reparented, out of this tree, and only what we already follow keeps it).
Asking every followed process is a directory listing and a read per thread, a few tens of
microseconds for a tree of ten processes; the recorder asks every few ticks, not every
tick, which is what "cheap" means here (see :data:`POLL_S`).

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


def children_of(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (empty if it is gone)."""
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"{base}/{tid}/children", "rb") as f:
                data = f.read()
        except OSError:
            continue
        out += map(int, data.split())
    return out


class ProcessTree:
    """The processes descended from a root, as far as they have been seen: each
    :meth:`poll` returns the ones new since the last."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.known: set[int] = {root}
        self._asked: set[int] = {root}  # processes whose children we ask for
        #: pid -> start time of a process that ended: its parent lists it until it reaps
        #: it, and only a new process of that pid (another start time) is new
        self._ended: dict[int, int | None] = {}

    def poll(self) -> list[int]:
        """Descendants not seen before, parents before their children."""
        new: list[int] = []
        queue = list(self._asked)
        while queue and len(self.known) < MAX_PROCESSES:
            parent = queue.pop()
            for child in children_of(parent):
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
            if pid in self.known:
                self.known.discard(pid)
                self._asked.discard(pid)
                if len(self._ended) >= MAX_PROCESSES:
                    self._ended.clear()
                self._ended[pid] = start_ticks(pid)


def start_ticks(pid: int) -> int | None:
    """/proc/PID/stat's start time (clock ticks since boot), None if there is no process:
    what tells two processes of one pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None

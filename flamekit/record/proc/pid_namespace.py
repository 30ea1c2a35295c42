"""Thread ids across PID namespaces: a containerized target's own ids for its threads,
turned into the ids this side's /proc gives them.

A process in another PID namespace (a container's, seen from the host) knows its threads
by that namespace's ids, and so does CPython: ``native_thread_id`` in a thread state
(3.11+) and the tid in glibc's struct pthread (read for 3.10 and older) are the ids
``gettid()`` returned inside. Everything flamekit reads by id goes through /proc here
(``/proc/PID/task/TID/stat`` for idle states, ``comm`` for thread names), and the ids
users see on this side (``top -H``, ``ps -L``, a debugger attached from the host) are
/proc's own. So those are the ids recorded; the namespace's id goes into the trace too
(``ns_tid``), for matching a trace with what the container logged.

Each task's ``status`` lists its ids in every PID namespace from /proc's own down to the
task's (``NSpid``, Linux 4.1+): the last one is the thread's own. A target in /proc's own
namespace (flamekit on the host for a host process, or run inside the target's
container) has one id per thread and nothing to translate (:attr:`HostTids.nested` is
false), which is the common case and costs nothing per sample.
"""

from __future__ import annotations

import os

from flamekit.record.proc.status import ints, read_status


def _nspid_of(path: str) -> tuple[int, ...]:
    """The ids on a status file's ``NSpid`` line, /proc's namespace first, the task's own
    last (empty: no such task, or a kernel before 4.1, which has no such line)."""
    return ints(read_status(path).get("NSpid"))


class HostTids:
    """One target's thread ids in its own PID namespace -> the ids /proc here names.

    The two maps are filled from the task directories' status files when an id is first
    asked for, and each answer is checked against that task's status at the time, so a
    task that ended and an id the namespace gave to another thread since never map to a
    stale id. Asked once per thread (the walker caches per thread state), never per
    sample.
    """

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self.pid = pid
        self._task = f"{proc}/{pid}/task"
        #: the target's PID namespace is not /proc's: its thread ids are translated
        self.nested = len(_nspid_of(f"{proc}/{pid}/status")) > 1
        self._ns_of: dict[int, int] = {}  #: host tid -> its namespace's, tasks read so far
        self._host_of: dict[int, int] = {}  #: the reverse

    def host(self, tid: int) -> int | None:
        """The id /proc here gives the target's thread ``tid`` (an id of the target's own
        namespace), checked now; None if the target has no such thread."""
        if not self.nested:
            return tid if os.path.exists(f"{self._task}/{tid}") else None
        known = self._host_of.get(tid)
        if known is not None:
            if self._own_id(known) == tid:
                return known
            self._forget(known)  # ended, and its id (or the id it had here) reused since
        self._scan()
        return self._host_of.get(tid)

    def ns_tid(self, host_tid: int | None) -> int | None:
        """The target's own id for its thread ``host_tid`` where it differs from
        ``host_tid`` (a target in another PID namespace); None otherwise, or unknown."""
        if not self.nested or host_tid is None:
            return None
        ns = self._own_id(host_tid)  # read now: asked once per thread record
        return ns if ns != host_tid else None

    def _own_id(self, host_tid: int) -> int | None:
        ids = _nspid_of(f"{self._task}/{host_tid}/status")
        return ids[-1] if ids else None

    def _scan(self) -> None:
        """Read the status of every task not read yet; forget tasks that are gone."""
        try:
            names = os.listdir(self._task)
        except OSError:
            return  # the target is gone: the walk finds that out
        live = set()
        for name in names:
            try:
                host = int(name)
            except ValueError:
                continue
            live.add(host)
            if host not in self._ns_of:
                ns = self._own_id(host)
                if ns is not None:
                    self._ns_of[host] = ns
                    self._host_of[ns] = host
        for host in [h for h in self._ns_of if h not in live]:
            self._forget(host)

    def _forget(self, host_tid: int) -> None:
        ns = self._ns_of.pop(host_tid, None)
        if ns is not None and self._host_of.get(ns) == host_tid:
            del self._host_of[ns]

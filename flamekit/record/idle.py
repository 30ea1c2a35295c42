"""Whether each thread is on CPU, from /proc/PID/task/TID/stat.

Read *before* pausing the target: a thread stopped by ptrace always reports itself as
stopped, which would make every thread look idle. Files are opened once per thread and
re-read with pread, one syscall per thread per sample.
"""

from __future__ import annotations

import os

#: Most stat files kept open. Threads that ended are not always told to us (a walk
#: simply stops seeing them), so past this many every file is closed and reopened on
#: demand: a target churning threads must not exhaust the recorder's descriptors.
MAX_OPEN = 512


class ThreadStates:
    """Cached /proc stat readers for the threads of one process."""

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self.pid = pid
        self._base = f"{proc}/{pid}/task"
        self._fds: dict[int, int] = {}

    def running(self, tid: int) -> bool | None:
        """True if the thread is running or runnable ('R'), False if sleeping/waiting,
        None if the thread is gone."""
        fd = self._fds.get(tid)
        if fd is None:
            try:
                fd = os.open(f"{self._base}/{tid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            if len(self._fds) >= MAX_OPEN:
                self.close()
            self._fds[tid] = fd
        try:
            data = os.pread(fd, 256, 0)
        except OSError:
            self.forget(tid)
            return None
        if not data:
            self.forget(tid)
            return None
        # "tid (comm) S ..." where comm may itself contain ') '; the state follows the last ')'.
        i = data.rfind(b")")
        return data[i + 2 : i + 3] == b"R" if i >= 0 else None

    def tids(self) -> list[int]:
        """Kernel thread ids currently in the process."""
        try:
            return [int(t) for t in os.listdir(self._base)]
        except OSError:
            return []

    def forget(self, tid: int) -> None:
        fd = self._fds.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for tid in list(self._fds):
            self.forget(tid)

"""Whether each thread is on CPU, from /proc/PID/task/TID/stat (and, where /proc can't
say which kernel thread a Python thread is, from the function it is in).

Read *before* pausing the target: a thread stopped by ptrace always reports itself as
stopped, which would make every thread look idle. Files are opened once per thread and
re-read with pread, one syscall per thread per sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

#: Innermost functions that mean "waiting", for threads whose run state /proc can't tell.
IDLE_FRAMES = frozenset(
    {
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("threading.py", "join"),
        ("selectors.py", "select"),
        ("queue.py", "get"),
        ("socket.py", "accept"),
        ("socket.py", "recv"),
        ("subprocess.py", "_try_wait"),
        ("connection.py", "_recv"),
        ("base_events.py", "_run_once"),
    }
)


def idle_by_frame(frames: Sequence[tuple[int, int]], code_at: Callable[[int], Any]) -> bool:
    """The fallback when a thread's kernel tid is unknown: a thread whose innermost Python
    frame is one of the standard library's waits is idle. No Python frames at all (a
    thread parked in C) counts as idle; an unreadable code object (``code_at`` returns
    None) does not. ``code_at`` maps a code address to something with ``filename`` and
    ``name``, so record (its code refs) and dump (its code reader) share the rule."""
    if not frames:
        return True
    code = code_at(frames[0][0])
    return code is not None and (os.path.basename(code.filename), code.name) in IDLE_FRAMES


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
        self._syscall: dict[int, int] = {}  # tid -> open /proc/.../syscall file

    def running(self, tid: int) -> bool | None:
        """True if the thread is running or runnable ('R'), False if sleeping/waiting,
        None if the thread is gone or in a tracing stop (its own state unknown)."""
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
        state = data[i + 2 : i + 3] if i >= 0 else b""
        if state == b"R":
            return True
        # 't' (a tracing stop) says nothing of the thread's own state: one of our pause
        # requests it reached only after we resumed the rest (a busy machine), held
        # until we serve it. Read as asleep, a spinning GIL holder was sampled idle.
        return None if state in (b"t", b"") else False

    def in_syscall(self, tid: int) -> bool | None:
        """Whether a *stopped* thread is inside a system call (or about to restart one),
        from /proc/PID/task/TID/syscall: a syscall number, not -1 (user code). None if
        unknown; a thread on a CPU reads as "running", unknown too."""
        fd = self._syscall.get(tid)
        if fd is None:
            try:
                fd = os.open(f"{self._base}/{tid}/syscall", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            if len(self._syscall) >= MAX_OPEN:
                self.close()
            self._syscall[tid] = fd
        try:
            nr = int(os.pread(fd, 32, 0).split(None, 1)[0])
        except (OSError, ValueError, IndexError):
            return None
        return nr >= 0

    def tids(self) -> list[int]:
        """Kernel thread ids currently in the process."""
        try:
            return [int(t) for t in os.listdir(self._base)]
        except OSError:
            return []

    def forget(self, tid: int) -> None:
        for fds in (self._fds, self._syscall):
            fd = fds.pop(tid, None)
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        for tid in list(self._fds) + list(self._syscall):
            self.forget(tid)

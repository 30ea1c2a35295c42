"""The target process itself, not only its pid: whether THAT process is still there.

A pid names whichever process holds it now. Once the target has exited and been
reaped, the kernel may give its pid to a new process, and everything that goes by pid
(``process_vm_readv``, ``/proc/PID/...``) then reads the newcomer: a recorder that only
asked whether ``/proc/PID`` exists went on sampling another program under the target's
name. (``/proc/PID/mem`` opened before is safe: it holds the old address space.)

A pidfd (``pidfd_open(2)``, Linux 5.3) refers to the process itself and polls readable
once it has exited, whoever holds the pid afterwards. A pid is not reused before its
process is reaped, so a read made before a check that finds the process alive was a
read of it: callers read, then check. Without a pidfd (an older kernel, a seccomp
filter) the process's start time (``/proc/PID/stat`` field 22, clock ticks since boot)
tells it from a successor; it misses only a successor started in the same tick.
"""

from __future__ import annotations

import os
import select


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class ProcessHandle:
    """One process, held from the moment it is opened: :meth:`alive` says whether it
    still exists (not merely its pid). Raises ProcessLookupError if ``pid`` names none."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        self._poll: select.poll | None = None
        self._started: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise
        except (AttributeError, OSError):  # no pidfd_open here (old kernel, seccomp)
            self._started = _start_time(pid)
            if self._started is None:
                raise ProcessLookupError(pid) from None
        else:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    @property
    def pidfd(self) -> int | None:
        """The pidfd, or None where the kernel gives none (then start times are used)."""
        return self._fd

    def alive(self) -> bool:
        """Whether the process opened still exists (a zombie main thread whose other
        threads run on counts as existing; a whole process exited, as gone)."""
        if self._poll is not None:
            return not self._poll.poll(0)
        if self._fd is None and self._started is None:
            return False  # closed
        return _start_time(self.pid) == self._started

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._poll = None
        self._started = None

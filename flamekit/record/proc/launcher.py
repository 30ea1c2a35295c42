"""The process being recorded: launching it, naming it, and facts for the trace header.

Reads go through /proc/PID/..., so a target in another mount namespace is described by
what it sees, not by our own filesystem.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable

from flamekit.errors import TargetError, UsageError


def check_exists(pid: int) -> None:
    """Raise a clear TargetError unless ``pid`` names a live process we can look at."""
    if pid <= 0:
        raise UsageError(f"--pid {pid}: a process id is a positive number")
    if not os.path.exists(f"/proc/{pid}"):
        raise TargetError(f"no process with pid {pid} (check the pid with ps or pgrep)")


def cmdline(pid: int) -> tuple[str, ...]:
    """The process's argv, or () when it can't be read (gone, or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)


def ppid(pid: int) -> int:
    """The parent's pid, 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def short_name(pid: int) -> str:
    """A name for output files: the script if the target runs one, else the executable."""
    args = cmdline(pid)
    for a in args[1:]:
        if a.endswith(".py"):
            return _safe(os.path.splitext(os.path.basename(a))[0])
    if args:
        return _safe(os.path.basename(args[0]))
    return "python"


def _safe(name: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return kept.strip("._")[:40] or "python"


def default_output(pid: int, when: float | None = None) -> str:
    """``flamekit-<name>-<pid>-<time>.fkt`` in the current directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"flamekit-{short_name(pid)}-{pid}-{stamp}.fkt"


def host_facts() -> tuple[str, str]:
    """(hostname, kernel release) of the recording machine."""
    return socket.gethostname(), os.uname().release


def launch(argv: list[str], sigmask: Iterable[int] | None = None) -> subprocess.Popen[bytes]:
    """Start the command to record, sharing our terminal and process group.

    Same process group, so a Ctrl-C at the terminal reaches the target as it would without
    flamekit; the recorder forwards only signals sent to itself alone. ``sigmask``: the
    signal mask the command starts with, when ours is not the one to hand on (the
    recorder blocks its stop signals while it starts the command).
    """
    if not argv:
        raise UsageError("nothing to launch: give a command after --, e.g. -- python script.py")
    preexec = None
    if sigmask is not None:
        mask = set(sigmask)

        def preexec() -> None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    try:
        return subprocess.Popen(argv, preexec_fn=preexec)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]}: command not found") from None
    except PermissionError:
        raise UsageError(f"{argv[0]}: permission denied (is it executable?)") from None
    except OSError as exc:
        raise TargetError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None


def exec_identity(pid: int) -> tuple[int, ...] | None:
    """Words of /proc/PID/stat that an ``execve`` changes: where the new program's code,
    stack and arguments were put (randomized anew for each program), or None if the
    process is gone. The process id and start time stay the same across an exec, so this
    is how a recorder that does not trace the target (non-blocking mode) notices one.

    A main thread that exited before the others (or one replaced by a thread calling
    exec) is a zombie with no memory map to show: any live thread's view is the same."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    if fields is None:
        return None
    if fields[0] in (b"Z", b"X"):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return None
        for tid in tids:
            fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
            if fields is not None and fields[0] not in (b"Z", b"X"):
                break
        else:
            return None
    try:
        # startcode, endcode, startstack (fields 26-28), arg_start, arg_end (48-49)
        return tuple(int(fields[i - 3]) for i in (26, 27, 28, 48, 49))
    except (ValueError, IndexError):
        return None


def _stat_fields(path: str) -> list[bytes] | None:
    """The fields of a /proc stat file after the command name (field 3 first)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields or None


_TICKS = os.sysconf("SC_CLK_TCK")


def start_time_ns(pid: int) -> int | None:
    """When ``pid`` started, on the monotonic clock (ns), from /proc/PID/stat's start
    time (clock ticks since boot, the boot-time clock: one that counts a suspend, which
    the monotonic clock does not; the two are lined up now)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    try:
        ticks = int(fields[19]) if fields is not None else None  # field 22, starttime
    except (ValueError, IndexError):
        ticks = None
    if ticks is None:
        return None
    since_boot = ticks * 1_000_000_000 // _TICKS
    return since_boot - (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns())

"""Issue 17: a target that exits, and whose pid a new process takes, is never read as it.

Everything the recorder reads goes by pid; once the target has exited and been reaped,
the kernel may give the pid to a new process. Here the test forces that (the next pid
is set through /proc/sys/kernel/ns_last_pid, as root), with the new process the same
program under the same interpreter, address randomization off for both: its memory
sits where the target's did, so a read by pid succeeds and returns the newcomer's
bytes. Before: the reads did (process_vm_readv), or failed as a mere bad range (the
/proc/PID/mem read: "short read"), and a non-blocking recording went on sampling the
newcomer under the target's name. Now the target is held by a pidfd (start time where
there is none) and each of those is "process gone".
"""

from __future__ import annotations

import ctypes
import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pythons import Interpreter, recordable
from test_reliability_common import ROOT, check_complete, finish, start_record, wait_until

from flamekit.errors import TargetError, TraceError
from flamekit.record.proc import handle
from flamekit.record.proc.memory import ProcessGoneError, ProcessMemory
from flamekit.record.proc.pause import Pauser
from flamekit.trace import load

#: Prints "ready ADDRESS", ADDRESS that of 64 bytes of its marker letter, then spins in
#: a function named after the letter.
PROGRAM = """\
import sys
letter = sys.argv[1]
marker = (letter * 64).encode()
def side_a():
    while True:
        pass
def side_b():
    while True:
        pass
print("ready", id(marker) + sys.getsizeof(b"") - 1, flush=True)
(side_a if letter == "A" else side_b)()
"""
ADDR_NO_RANDOMIZE = 0x0040000
_libc = ctypes.CDLL(None, use_errno=True)


def _no_aslr() -> None:
    _libc.personality(ADDR_NO_RANDOMIZE)


class Side:
    """One run of PROGRAM, address randomization off."""

    def __init__(self, python: str, letter: str) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", PROGRAM, letter], stdout=subprocess.PIPE, text=True, preexec_fn=_no_aslr
        )
        self.pid = self.proc.pid

    def ready(self) -> int:
        """The marker's address, once the program runs."""
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("ready "), line
        return int(line.split()[1])

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _take_pid(pid: int, python: str, letter: str, tries: int = 200) -> Side:
    """A new Side that has ``pid`` (free now: its process was reaped), made so by setting
    the last pid given out to the one before it; another process of the machine may get
    there first, so a few tries."""
    for _ in range(tries):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError as e:
            pytest.skip(f"cannot choose the next pid here ({e.strerror}): needs root")
        side = Side(python, letter)
        if side.pid == pid:
            return side
        side.end()
    pytest.skip(f"pid {pid} went to other processes {tries} times")


@pytest.fixture(params=["pidfd", "start-time"])
def identity(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernel's pidfd, or the start-time fallback of kernels without one."""
    if request.param == "start-time":

        def no_pidfd(pid: int, flags: int = 0) -> int:
            raise OSError(errno.ENOSYS, "pidfd_open")

        monkeypatch.setattr(handle.os, "pidfd_open", no_pidfd)
    return request.param


def test_reads_of_a_target_whose_pid_was_reused_say_it_is_gone(identity: str) -> None:
    a = Side(sys.executable, "A")
    address = a.ready()
    memory = ProcessMemory(a.pid)
    b = None
    try:
        assert memory.read(address, 64) == b"A" * 64
        assert memory.read_ranges([(address, 64)]) == b"A" * 64
        assert memory.alive()
        a.end()  # exited and reaped: its pid is free
        b = _take_pid(a.pid, sys.executable, "B")
        assert b.ready() == address  # the newcomer's marker is where the target's was
        with ProcessMemory(b.pid) as by_pid:
            assert by_pid.read_ranges([(address, 64)]) == b"B" * 64
        reads = {
            "read (/proc/PID/mem)": lambda: memory.read(address, 64),
            "read_ranges": lambda: memory.read_ranges([(address, 64)]),
            "read_ranges_partial": lambda: memory.read_ranges_partial([(address, 64)] * 2),
            "read_uniform": lambda: memory.read_uniform([address, address], 64),
            "ranges_hold": lambda: memory.ranges_hold(((address, 64),), b"B" * 64),
            "probe": lambda: memory.probe(address, 64),
            "check_alive": memory.check_alive,
        }
        for name, read in reads.items():
            with pytest.raises(ProcessGoneError):
                got = read()
                pytest.fail(f"{name} through the old handle gave {got!r}")
        assert not memory.alive()
        memory._vm = False  # /proc/PID/mem alone, as where process_vm_readv is refused
        with pytest.raises(ProcessGoneError):
            memory.read_ranges([(address, 64)])
    finally:
        memory.close()
        a.end()
        if b is not None:
            b.end()


def test_a_pauser_lets_go_of_a_process_that_took_the_pid(identity: str) -> None:
    """Attach opens the target, then seizes it by pid: a target that exited in between
    must not leave its successor seized (or stopped) under its name."""
    a = Side(sys.executable, "A")
    a.ready()
    memory = ProcessMemory(a.pid)
    b = None
    try:
        a.end()
        b = _take_pid(a.pid, sys.executable, "B")
        b.ready()
        with pytest.raises(TargetError, match="has exited"):
            Pauser(b.pid, memory.process)
        with open(f"/proc/{b.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        assert status["TracerPid"].strip() == "0" and status["State"].split()[0] in "RS"
    finally:
        memory.close()
        a.end()
        if b is not None:
            b.end()


def _recorded(trace: Path) -> set[str]:
    """Names of the code objects in the trace so far (it is flushed as it is written)."""
    try:
        return {c.name for c in load(trace).codes.values()}
    except TraceError:
        return set()


@pytest.mark.parametrize("interp", [i for i in recordable() if i.id in ("3.9", "3.12")], ids=str)
def test_a_nonblocking_recording_ends_when_the_target_does(
    tmp_path: Path, interp: Interpreter
) -> None:
    """A non-blocking recording at 5 Hz: the target exits and a new process takes its
    pid between two ticks. Before, the recorder found /proc/PID there, and recorded the
    newcomer's side_b under the target until it was interrupted."""
    out = tmp_path / "reuse.fkt"
    a = Side(interp.path, "A")
    a.ready()
    b = None
    rec = start_record("-p", a.pid, "--nonblocking", "-r", 5, "-q", "-o", out, cwd=ROOT)
    try:
        # Until the recorder has recorded the target (it may start late on a busy machine,
        # and would then attach to the newcomer, as asked)
        assert wait_until(lambda: "side_a" in _recorded(out), timeout=30), "no sample"
        a.end()
        b = _take_pid(a.pid, interp.path, "B")
        b.ready()
        ended = wait_until(lambda: rec.poll() is not None, timeout=5)
        if not ended:
            rec.send_signal(signal.SIGINT)
        code, _, err = finish(rec)
        assert ended, "still recording after the target exited (the newcomer, by its pid)"
        assert code == 0, err
        tr = check_complete(out, "target-exited")
        names = {c.name for c in tr.codes.values()}
        assert "side_a" in names and "side_b" not in names, names
    finally:
        a.end()
        if b is not None:
            b.end()
        if rec.poll() is None:
            rec.kill()
            rec.wait()

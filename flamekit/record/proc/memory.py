"""Reading another process's memory, fast.

The recorder never runs code in the target: everything it learns comes from copying
bytes out of the target's address space. Two kernel interfaces do that:

* ``process_vm_readv(2)`` copies many remote ranges in ONE system call. The stack walker
  leans on it (a thread list, a data-stack chunk, the code objects of a stack: one call
  each), so it is the main path.
* ``/proc/PID/mem`` read with ``pread(2)`` is a plain file read. For a single small range
  it is cheaper from Python than a ctypes call (about 1.6 us against 3 us here), so
  single reads use it when it could be opened, and it is the whole fallback when
  ``process_vm_readv`` is unavailable (old kernels, some seccomp profiles).

Both are named by pid, and a pid outlives its process (it goes to a new one once the
target has exited and been reaped): ``/proc/PID/mem``, opened at once, keeps the
target's own address space, but ``process_vm_readv`` reads whoever has the pid now.
So a ProcessMemory holds the process itself (:class:`ProcessHandle`, a pidfd), checks
after every ``process_vm_readv`` that it is still there, and "gone" means that process
is gone, whatever holds its pid: no read returns a newcomer's bytes, and a read of a
target that has exited raises :class:`ProcessGoneError`. For anything else read by pid
(``/proc/PID/...``), :meth:`ProcessMemory.check_alive` after the read says the same.

Both need ptrace-level access to the target. Failures become :class:`TargetError`
subclasses so the CLI prints one line: :class:`ProcessGoneError` when the process no
longer exists, a plain :class:`TargetError` with a remedy when access is denied, and
:class:`ReadError` for a range that is not mapped, which is what a torn or stale pointer
produces while sampling a running target: the sampler counts those and goes on.
"""

from __future__ import annotations

import array
import ctypes
import errno
import itertools
import os
from collections.abc import Sequence

from flamekit.errors import TargetError
from flamekit.record.proc.handle import ProcessHandle

#: The most iovecs the kernel takes in one process_vm_readv call (UIO_MAXIOV).
IOV_MAX = 1024
_ADDRESS_END = 1 << 63


class ReadError(TargetError):
    """A range of target memory could not be read (unmapped, or the target changed under us).

    Transient while sampling a running target: count it, don't stop.
    """

    def __init__(self, message: str, address: int = 0) -> None:
        super().__init__(message)
        self.address = address


class ProcessGoneError(TargetError):
    """The target process does not exist (never did, or exited)."""


def _ptrace_scope() -> str:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return f.read().strip()
    except OSError:
        return ""


def permission_error(pid: int) -> TargetError:
    """The one-line explanation, with remedies, for 'may not read this process'."""
    scope = _ptrace_scope()
    scope_note = f" (it is {scope} here)" if scope else ""
    return TargetError(
        f"permission denied reading the memory of pid {pid}: run flamekit as the target's "
        f"user or as root; if /proc/sys/kernel/yama/ptrace_scope is 1 or more{scope_note}, "
        "run as root or set it to 0; in a container, grant CAP_SYS_PTRACE "
        "(docker run --cap-add SYS_PTRACE)"
    )


def gone_error(pid: int) -> ProcessGoneError:
    return ProcessGoneError(f"no such process: pid {pid}")


def check_process(pid: int) -> None:
    """Raise :class:`ProcessGoneError` unless ``pid`` names a live process."""
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise gone_error(pid)


_libc = ctypes.CDLL(None, use_errno=True)
try:
    _process_vm_readv = _libc.process_vm_readv
    _process_vm_readv.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _process_vm_readv.restype = ctypes.c_ssize_t
except AttributeError:  # a libc without the wrapper
    _process_vm_readv = None


class ProcessMemory:
    """Read access to one process's address space.

    Ranges are ``(address, length)`` pairs. Vectored reads return the bytes of all
    ranges concatenated in order, so callers slice or ``unpack_from`` at known offsets
    instead of handling many small objects. Not thread-safe (it reuses buffers).
    """

    def __init__(self, pid: int) -> None:
        check_process(pid)
        self.pid = pid
        self._fd: int | None = None
        try:
            #: the process itself: its pid may name another one once it has exited
            self.process = ProcessHandle(pid)
            self._alive = self.process.alive
        except ProcessLookupError:
            raise gone_error(pid) from None
        try:
            self._fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.process.close()
            raise gone_error(pid) from None
        except PermissionError:
            self._fd = None  # maybe process_vm_readv is allowed; probe() decides
        except OSError:
            self._fd = None
        self._vm = _process_vm_readv is not None
        # Reused buffers: a remote iovec table and a local destination.
        self._iov = array.array("Q", bytes(16 * IOV_MAX))
        self._iov_addr = self._iov.buffer_info()[0]
        #: The tuple of ranges the iovec table holds now, with their lengths: a caller
        #: reading the same tuple sample after sample doesn't pay for refilling it.
        self._iov_for: tuple | None = None
        self._iov_lengths: list[int] = []
        self._local = array.array("Q", [0, 0])
        self._local_addr = self._local.buffer_info()[0]
        self._buf = bytearray(0)
        self._buf_addr = 0
        self._grow(1 << 16)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.process.close()

    def alive(self) -> bool:
        """Whether the process opened still exists (not merely a process of its pid)."""
        return self.process.alive()

    def check_alive(self) -> None:
        """ProcessGoneError unless the process opened still exists: then every read made
        before this call read it, not a process that took its pid since (the pid is not
        reused before the process has exited)."""
        if not self.process.alive():
            raise gone_error(self.pid)

    def __enter__(self) -> ProcessMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def probe(self, address: int, size: int = 8) -> bytes:
        """A first read that turns 'cannot access this process' into a clear TargetError.

        Tries both interfaces, keeps the ones that work, and raises a permission error
        with remedies when neither does.
        """
        denied = False
        if self._vm:
            try:
                return self._vm_read_single(address, size)
            except PermissionError:
                denied = True
                self._vm = False
            except ReadError:
                if self._fd is None:
                    raise
            except OSError:
                self._vm = False
        if self._fd is None:
            if denied or self.alive():
                raise permission_error(self.pid)
            raise gone_error(self.pid)
        return self.read(address, size)

    # -- single reads ------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address``; :class:`ReadError` if any of it is unreadable."""
        fd = self._fd
        if fd is not None:
            try:
                data = os.pread(fd, size, address)
            except OSError as e:
                raise self._translate(e, address, size) from None
            except OverflowError:
                raise ReadError(f"bad range {address:#x}+{size}", address) from None
            if len(data) != size:
                if not data and not self.alive():
                    raise gone_error(self.pid)
                raise ReadError(f"short read at {address:#x} ({len(data)}/{size} bytes)", address)
            return data
        return self._vm_read_single(address, size)

    def _vm_read_single(self, address: int, size: int) -> bytes:
        if not 0 <= address < _ADDRESS_END or not 0 <= size < _ADDRESS_END:
            raise ReadError(f"bad range {address:#x}+{size}", address)
        self._grow(size)
        iov = self._iov
        self._iov_for = None
        iov[0] = address
        iov[1] = size
        self._local[1] = size
        n = self._vm_readv(1)
        if n != size:
            if n < 0:
                raise self._translate(OSError(ctypes.get_errno(), ""), address, size)
            raise ReadError(f"short read at {address:#x} ({n}/{size} bytes)", address)
        return bytes(self._buf[:size])

    # -- vectored reads ----------------------------------------------------------------

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> bytes:
        """Every range, concatenated; :class:`ReadError` if any range is unreadable."""
        data, complete = self.read_ranges_partial(ranges)
        if complete != len(ranges):
            addr = ranges[complete][0]
            raise ReadError(f"cannot read {ranges[complete][1]} bytes at {addr:#x}", addr)
        return data

    def ranges_hold(self, ranges: tuple[tuple[int, int], ...], data: bytes) -> bool:
        """Whether ``ranges`` can all be read and hold ``data`` now, compared where the
        kernel put them: a deep stack's older data-stack chunks are hundreds of KiB, and
        copying them out into a new bytes object costs more than the read and the compare
        (fresh pages for every large allocation)."""
        n = len(ranges)
        if not self._vm or not 0 < n <= IOV_MAX:
            got, k = self.read_ranges_partial(ranges)
            return k == n and got == data
        if not self._load_iov(ranges):
            return False
        total = len(data)
        if sum(self._iov_lengths) != total:
            return False
        self._grow(total)
        self._local[1] = total
        return self._vm_readv(n) == total and self._buf.startswith(data)

    def _load_iov(self, ranges: Sequence[tuple[int, int]]) -> bool:
        """Fill the iovec table with ``ranges`` (at most IOV_MAX) unless it holds them
        already; False if an address does not fit (a garbage pointer)."""
        if ranges is self._iov_for:
            return True
        try:
            self._iov[0 : 2 * len(ranges)] = array.array("Q", itertools.chain.from_iterable(ranges))
        except OverflowError:
            self._iov_for = None
            return False
        # Only a tuple is remembered: a list could change under the same identity.
        self._iov_for = ranges if type(ranges) is tuple else None
        self._iov_lengths = [length for _, length in ranges]
        return True

    def read_ranges_partial(self, ranges: Sequence[tuple[int, int]]) -> tuple[bytes, int]:
        """The longest readable prefix of ``ranges``: (concatenated bytes, ranges read).

        The kernel stops at the first range that fails, so one bad pointer among many
        only costs the caller a retry of the rest.
        """
        n = len(ranges)
        if n == 0:
            return b"", 0
        if n <= IOV_MAX:
            if not self._load_iov(ranges):
                return self._pread_ranges_checked(ranges)
            return self._readv(n, self._iov_lengths)
        out = []
        done = 0
        for start in range(0, n, IOV_MAX):
            part = ranges[start : start + IOV_MAX]
            data, k = self.read_ranges_partial(part)
            out.append(data)
            done += k
            if k != len(part):
                break
        return b"".join(out), done

    def read_uniform(self, addresses: Sequence[int], size: int) -> tuple[bytes, int]:
        """``size`` bytes at each address, concatenated, as the longest readable prefix.

        Returns (bytes, number of addresses read); record ``i`` is at ``i * size``.
        Cheaper than :meth:`read_ranges_partial` (no per-range tuples).
        """
        n = len(addresses)
        if n == 0:
            return b"", 0
        if n > IOV_MAX:
            out = []
            done = 0
            for start in range(0, n, IOV_MAX):
                data, k = self.read_uniform(addresses[start : start + IOV_MAX], size)
                out.append(data)
                done += k
                if k != min(IOV_MAX, n - start):
                    break
            return b"".join(out), done
        iov = self._iov
        self._iov_for = None
        try:
            iov[0 : 2 * n : 2] = array.array("Q", addresses)
        except OverflowError:
            return self._pread_ranges_checked([(a, size) for a in addresses])
        iov[1 : 2 * n : 2] = array.array("Q", (size,)) * n
        return self._readv(n, None, size)

    def _pread_ranges_checked(self, ranges: Sequence[tuple[int, int]]) -> tuple[bytes, int]:
        """The slow path for ranges with impossible addresses (garbage pointers)."""
        out = []
        for address, size in ranges:
            try:
                out.append(self.read(address, size))
            except ReadError:
                break
        return b"".join(out), len(out)

    def _readv(self, n: int, lengths: list[int] | None, size: int = 0) -> tuple[bytes, int]:
        total = size * n if lengths is None else sum(lengths)
        if not self._vm:
            return self._pread_ranges(n, lengths, size)
        self._grow(total)
        self._local[1] = total
        got = self._vm_readv(n)
        if got == total:
            return bytes(self._buf[:total]), n
        if got < 0:
            err = ctypes.get_errno()
            if err == errno.EFAULT:
                return b"", 0  # the first range is bad
            if err in (errno.ENOSYS, errno.EPERM) and self._fd is not None:
                self._vm = False  # blocked by seccomp or similar: use /proc/PID/mem
                return self._pread_ranges(n, lengths, size)
            raise self._translate(OSError(err, os.strerror(err)), self._iov[0], 0)
        # A partial transfer: keep the ranges that arrived whole.
        if lengths is None:
            k = got // size
            return bytes(self._buf[: k * size]), k
        k = 0
        acc = 0
        for length in lengths:
            if acc + length > got:
                break
            acc += length
            k += 1
        return bytes(self._buf[:acc]), k

    def _vm_readv(self, n: int) -> int:
        """``process_vm_readv`` of the iovec table's first ``n`` ranges into the buffer
        (``self._local``): bytes read, or -1 (errno in ctypes.get_errno()).

        It goes by pid, so the process is checked after it: the bytes are the target's
        only if the target still exists then (its pid is not given to another before).
        One system call more a read, about 1.3 us here (a process_vm_readv is ~6 us; a
        recorder tick makes about one).
        """
        got = _process_vm_readv(self.pid, self._local_addr, 1, self._iov_addr, n, 0)
        if not self._alive():
            raise gone_error(self.pid)
        return got

    def _pread_ranges(self, n: int, lengths: list[int] | None, size: int) -> tuple[bytes, int]:
        iov = self._iov
        out = []
        for i in range(n):
            length = size if lengths is None else lengths[i]
            try:
                out.append(self.read(iov[2 * i], length))
            except ReadError:
                return b"".join(out), i
        return b"".join(out), n

    def _grow(self, size: int) -> None:
        if size > len(self._buf):
            self._buf = bytearray(max(size, 2 * len(self._buf)))
            self._buf_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._buf))
            self._local[0] = self._buf_addr

    def _translate(self, e: OSError, address: int, size: int) -> TargetError:
        if e.errno == errno.ESRCH or (e.errno in (errno.EIO, errno.EFAULT) and not self.alive()):
            return gone_error(self.pid)
        if e.errno in (errno.EPERM, errno.EACCES):
            return permission_error(self.pid)
        if e.errno in (errno.EIO, errno.EFAULT, errno.EINVAL, errno.ENOMEM):
            return ReadError(f"cannot read {size} bytes at {address:#x}", address)
        return TargetError(f"reading memory of pid {self.pid} failed: {e.strerror or e}")

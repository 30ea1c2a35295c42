"""Attaching to a CPython process: find its interpreter, version and layout, once.

Everything here is per-process and does not change while the process lives, so the
recorder computes it once (:func:`open_target`) and the per-sample walker only reads
the few words that move. Nothing is injected and nothing is paused: the ELF files are
read from disk (through ``/proc/PID/root``) and the rest from the target's memory.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

from flamekit.errors import TargetError
from flamekit.record.layout import (
    DEBUG_READ_SIZE,
    Layout,
    layout_for_release,
    layout_from_debug_offsets,
    supported_minors,
)
from flamekit.record.proc import maps as mapsmod
from flamekit.record.proc.elf import ElfError, ElfImage, scan_version_strings
from flamekit.record.proc.memory import ProcessMemory, ReadError

#: Symbols looked up once per process (absolute addresses end up in PythonTarget.symbols).
_TYPE_SYMBOLS = (
    "PyCode_Type",
    "PyFrame_Type",
    "PyUnicode_Type",
    "PyBytes_Type",
    "PyString_Type",
    "_Py_NoneStruct",
    "_PyThreadState_Current",
)

_NAME_VERSION = re.compile(r"python(\d)\.(\d+)")


@dataclass
class PythonTarget:
    """A CPython process we can read: where its state is and how it is laid out."""

    pid: int
    memory: ProcessMemory
    binary: str  #: the ELF holding the interpreter (target's view of the path)
    version: tuple[int, int, int]  #: micro is 0 when it could not be determined
    layout: Layout
    #: address of _PyRuntime (3.7+), else None
    runtime: int | None
    #: address of the static ``interp_head`` variable (2.7, 3.6), else None
    interp_head: int | None
    #: absolute addresses of the type objects and other symbols in _TYPE_SYMBOLS found
    symbols: dict[str, int] = field(default_factory=dict)
    exe: str = ""

    @property
    def version_string(self) -> str:
        return ".".join(str(x) for x in self.version)

    def interpreters_head_address(self) -> int:
        """Where the pointer to the first PyInterpreterState is stored."""
        if self.runtime is not None:
            assert self.layout.runtime_interpreters_head is not None
            return self.runtime + self.layout.runtime_interpreters_head
        assert self.interp_head is not None
        return self.interp_head

    def close(self) -> None:
        self.memory.close()


def open_target(pid: int) -> PythonTarget:
    """Inspect process ``pid`` and return what the walker needs to read its stacks.

    Raises TargetError with one line of explanation when the process does not exist,
    cannot be read, is not CPython, or is a CPython whose state cannot be located.
    """
    memory = ProcessMemory(pid)
    try:
        target = _open(pid, memory)
        # What was read of /proc/PID (maps, files) was of this process, not a new one
        # that took its pid since, if it is still there now.
        memory.check_alive()
        return target
    except BaseException:
        memory.close()
        raise


def _open(pid: int, memory: ProcessMemory) -> PythonTarget:
    exe = mapsmod.exe_path(pid)
    maps = mapsmod.read_maps(pid)
    candidates = [exe] + [p for p in mapsmod.libpython_paths(maps) if p != exe]
    tried: list[str] = []
    unreadable: list[str] = []  # files that are no usable ELF file: corrupt, or hostile
    for path in candidates:
        try:
            found = _from_file(pid, memory, exe, path, maps, tried)
        except FileNotFoundError:
            continue
        except ElfError as e:
            unreadable.append(str(e))
            continue
        if found is not None:
            return found
    if unreadable:
        # The interpreter may well be in the file that could not be read: say which.
        raise TargetError(f"pid {pid} ({exe}): {'; '.join(unreadable)}")
    looked = " or ".join(tried) or os.path.basename(exe)
    if _NAME_VERSION.search(os.path.basename(exe)):
        raise TargetError(
            f"pid {pid} ({exe}) looks like Python but no interpreter symbols were found in "
            f"{looked}: a CPython build without symbols is not supported"
        )
    raise TargetError(
        f"pid {pid} ({exe}) is not a CPython process (no _PyRuntime in {looked}): "
        "flamekit records CPython interpreters only (pgrep -a python lists running ones)"
    )


def _from_file(
    pid: int,
    memory: ProcessMemory,
    exe: str,
    path: str,
    maps: list[mapsmod.Mapping],
    tried: list[str],
) -> PythonTarget | None:
    """The target, if ``path`` (as the target names it) holds its interpreter; None if
    it holds no interpreter symbols. The file is the target's: ElfError when it is no
    usable ELF file, FileNotFoundError when it cannot be found from here."""
    with ElfImage(mapsmod.host_path(pid, path, maps), name=path) as elf:
        runtime_sym = elf.dynamic_symbol("_PyRuntime")
        head_fn = elf.dynamic_symbol("PyInterpreterState_Head")
        tried.append(os.path.basename(path))
        if runtime_sym is None and head_fn is None:
            return None
        try:
            bias = mapsmod.load_bias(maps, path, elf.loads, elf.is_pie)
        except LookupError:
            return None
        return _from_elf(pid, memory, exe, path, elf, bias, runtime_sym, head_fn)


def _from_elf(
    pid: int,
    memory: ProcessMemory,
    exe: str,
    path: str,
    elf: ElfImage,
    bias: int,
    runtime_sym: int | None,
    head_fn: int | None,
) -> PythonTarget:
    symbols = {name: bias + v for name, v in elf.symbols(_TYPE_SYMBOLS).items()}
    runtime = None if runtime_sym is None else bias + runtime_sym
    probe_addr = runtime if runtime is not None else symbols.get("PyCode_Type", bias)
    memory.probe(probe_addr)  # turns "no access" into a clear TargetError now

    version = _detect_version(memory, elf, path, exe, bias)
    minor = version[:2]
    if minor not in supported_minors() and minor < (3, 13):
        raise TargetError(f"CPython {minor[0]}.{minor[1]} is not supported")
    layout: Layout
    if minor >= (3, 13):
        assert runtime is not None
        raw = memory.read(runtime, DEBUG_READ_SIZE)
        layout = layout_from_debug_offsets(raw, f"_Py_DebugOffsets of {path}")
        if layout.version != minor:
            raise TargetError(
                f"{path}: Py_Version says {minor[0]}.{minor[1]} but _Py_DebugOffsets says "
                f"{layout.version[0]}.{layout.version[1]}"
            )
    else:
        layout = layout_for_release(version)

    interp_head = None
    if runtime is None:
        interp_head = _find_interp_head(memory, elf, bias, head_fn, layout)
    elif layout.runtime_interpreters_head is None:
        raise TargetError(f"{path}: _PyRuntime found but the layout has no interpreters head")
    return PythonTarget(
        pid=pid,
        memory=memory,
        binary=path,
        version=version,
        layout=layout,
        runtime=runtime,
        interp_head=interp_head,
        symbols=symbols,
        exe=exe,
    )


def _detect_version(
    memory: ProcessMemory, elf: ElfImage, path: str, exe: str, bias: int
) -> tuple[int, int, int]:
    """Py_Version (3.11+), else the file names, else a scan for PY_VERSION strings."""
    sym = elf.dynamic_symbol("Py_Version")
    if sym is not None:
        try:
            (hexversion,) = struct.unpack("<I", memory.read(bias + sym, 4))
            return (hexversion >> 24 & 0xFF, hexversion >> 16 & 0xFF, hexversion >> 8 & 0xFF)
        except ReadError:
            pass
    hint = None
    for name in (elf.soname() or "", os.path.basename(path), os.path.basename(exe)):
        m = _NAME_VERSION.search(name)
        if m:
            hint = (int(m.group(1)), int(m.group(2)))
            break
    found = scan_version_strings(elf.readonly_data(), hint)
    if hint is not None:
        for v in found:
            if v[:2] == hint:
                return v
        return (hint[0], hint[1], 0)
    for v in found:
        if v[:2] in supported_minors():
            return v
    raise TargetError(f"cannot tell which CPython version {path} is")


def _find_interp_head(
    memory: ProcessMemory, elf: ElfImage, bias: int, head_fn: int | None, layout: Layout
) -> int:
    """The address of 2.7/3.6's static ``interp_head``.

    From .symtab when present; otherwise decode ``PyInterpreterState_Head``, which on
    these builds is ``mov interp_head(%rip), %rax; ret``. Either way the result must
    pass a structural check (interp->tstate_head->interp == interp).
    """
    candidates = []
    sym = elf.static_symbol("interp_head")
    if sym is not None:
        candidates.append(bias + sym)
    if head_fn is not None:
        try:
            code = memory.read(bias + head_fn, 8)
        except ReadError:
            code = b""
        if code[:3] == b"\x48\x8b\x05" and code[7:8] == b"\xc3":
            (disp,) = struct.unpack_from("<i", code, 3)
            candidates.append(bias + head_fn + 7 + disp)
    for addr in candidates:
        if _plausible_interp_head(memory, addr, layout):
            return addr
    raise TargetError(
        f"cannot locate the interpreter list in {elf.name}: no interp_head symbol and "
        "PyInterpreterState_Head could not be decoded"
    )


def _plausible_interp_head(memory: ProcessMemory, addr: int, layout: Layout) -> bool:
    try:
        (interp,) = struct.unpack("<Q", memory.read(addr, 8))
        if interp == 0:
            return True  # not initialised yet: nothing to contradict
        (tstate,) = struct.unpack("<Q", memory.read(interp + layout.interp_threads_head, 8))
        if tstate == 0:
            return True
        (back,) = struct.unpack("<Q", memory.read(tstate + layout.tstate_interp, 8))
        return back == interp
    except ReadError:
        return False

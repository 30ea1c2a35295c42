"""The target's memory map (/proc/PID/maps): which files are mapped where.

The recorder needs it for two things: finding the ELF file that holds the interpreter
(the executable itself, or a ``libpythonX.Y.so`` it loaded) and computing that file's
load bias, so a symbol's link-time address becomes an address in the target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from flamekit.errors import TargetError
from flamekit.record.proc.memory import gone_error, permission_error

_DELETED = " (deleted)"


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str  #: e.g. "r-xp"
    offset: int  #: file offset of ``start``
    inode: int
    path: str  #: "" for anonymous memory; "[heap]", "[stack]"... for special ones

    @property
    def is_file(self) -> bool:
        return self.path.startswith("/")


def read_maps(pid: int) -> list[Mapping]:
    """Every mapping of ``pid``, in address order."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise gone_error(pid) from None
    except PermissionError:
        raise permission_error(pid) from None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        path = parts[5] if len(parts) > 5 else ""
        if path.endswith(_DELETED):
            path = path[: -len(_DELETED)]
        out.append(
            Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), int(parts[4]), path)
        )
    return out


def exe_path(pid: int) -> str:
    """The target's executable, as a path inside the target's mount namespace."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):
            raise TargetError(
                f"pid {pid} has no executable (a kernel thread, or a zombie): not a CPython process"
            ) from None
        raise gone_error(pid) from None
    except PermissionError:
        raise permission_error(pid) from None
    if path.endswith(_DELETED):
        path = path[: -len(_DELETED)]
    return path


_LIBPYTHON = re.compile(r"/libpython\d+(\.\d+)?[a-z]*\.so")


def libpython_paths(maps: list[Mapping]) -> list[str]:
    """Paths of mapped libpython shared objects (normally zero or one), first mapped first."""
    seen: list[str] = []
    for m in maps:
        if m.is_file and _LIBPYTHON.search(m.path) and m.path not in seen:
            seen.append(m.path)
    return seen


def host_path(pid: int, path: str, maps: list[Mapping]) -> str:
    """A path this process can open that is the file the target has mapped as ``path``.

    The file's name is only the target's word for it, so it is not trusted: in a
    container it names another file here, and after a package upgrade (or a hostile
    target renaming something over it) it names a file that is not the one mapped.
    So, first, the mapping itself (``/proc/PID/map_files/START-END``: the mapped inode,
    even when deleted or replaced); opening that needs CAP_SYS_ADMIN, so without it the
    path inside the target's own mount namespace (``/proc/PID/root``). Never the bare
    path. Raises FileNotFoundError when neither can be opened.
    """
    for m in mappings_of(maps, path):
        mapped = f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}"
        try:
            with open(mapped, "rb"):
                return mapped
        except OSError:
            break  # no CAP_SYS_ADMIN, or the mapping just went: try the namespace path
    via_root = f"/proc/{pid}/root{path}"
    if os.path.exists(via_root):
        return via_root
    raise FileNotFoundError(f"{path} (as pid {pid} sees it) cannot be opened from here")


def mappings_of(maps: list[Mapping], path: str) -> list[Mapping]:
    return [m for m in maps if m.path == path]


def load_bias(maps: list[Mapping], path: str, loads: list[tuple[int, int]], is_pie: bool) -> int:
    """What to add to a link-time address in ``path`` to get its address in the target.

    ``loads`` are the ELF's PT_LOAD segments as ``(p_vaddr, p_offset)``. A non-PIE
    executable (ET_EXEC) is loaded at its link addresses: bias 0. Otherwise the bias
    comes from the mapping of file offset 0 against the first PT_LOAD's page; if that
    mapping is missing it matches any segment's page-aligned file offset, never
    ``start - offset`` of a data mapping (its p_vaddr and p_offset differ by a page).
    """
    if not is_pie:
        return 0
    mine = mappings_of(maps, path)
    if not mine:
        raise LookupError(f"{path} is not mapped")
    page = 0xFFF
    for m in mine:
        if m.offset == 0 and loads:
            return m.start - (loads[0][0] & ~page)
    for vaddr, off in loads:
        for m in mine:
            if m.offset == off & ~page:
                return m.start - (vaddr & ~page)
    return mine[0].start - mine[0].offset

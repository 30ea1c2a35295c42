"""Real interpreters made to look like builds flamekit must refuse, for the refusal tests.

No CPython 3.5, 3.4 or 2.6 and no debug build of 2.7-3.7 is installed here, and none
can be built in a test. What the recorder tells them by is on disk, though: the version
in the file names, the soname and the PY_VERSION string (3.5 has no Py_Version), and a
debug build's flavour in its exported symbols. So a copy of pyenv's libpython and
executable is edited to say so, byte for byte, and run: a live CPython process that
every tell says is the build to refuse (its memory is the original's: a recorder that
went on would read it with a wrong layout's version, which is what must never happen).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from pythons import Interpreter

SHT_PROGBITS = 1


@dataclass(frozen=True)
class Fake:
    argv: list[str]  #: runs the fake interpreter with ``-c``'s code appended
    env: dict[str, str]
    #: what the fake needs in its environment (``env`` is os.environ with these)
    settings: dict[str, str]

    def command(self) -> list[str]:
        """argv through env(1), for a launcher whose own environment must stay as is."""
        return ["env", *(f"{k}={v}" for k, v in self.settings.items()), *self.argv]


def _prefix(interp: Interpreter) -> Path:
    return Path(interp.path).parent.parent


def _libpython(interp: Interpreter) -> Path:
    (lib,) = _prefix(interp).glob("lib/libpython*.so.1.0")
    return lib


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new), (old, new)
    assert old in data, old
    return data.replace(old, new)


def _fake(
    interp: Interpreter, where: Path, edit_lib, edit_exe, lib_name: str, exe_name: str
) -> Fake:
    where.mkdir(parents=True, exist_ok=True)
    lib, exe = _libpython(interp), Path(interp.path)
    (where / lib_name).write_bytes(edit_lib(lib.read_bytes()))
    (where / exe_name).write_bytes(edit_exe(exe.read_bytes()))
    (where / exe_name).chmod(0o755)
    # RUNPATH (pyenv's) gives way to LD_LIBRARY_PATH: the edited copy is loaded.
    settings = {"LD_LIBRARY_PATH": str(where), "PYTHONHOME": str(_prefix(interp))}
    return Fake([str(where / exe_name)], {**os.environ, **settings}, settings)


def other_version(interp: Interpreter, version: str, where: Path) -> Fake:
    """``interp`` (pyenv's, --enable-shared) saying it is CPython ``version`` (X.Y.Z):
    its file names, its soname (and the executable's DT_NEEDED) and its PY_VERSION
    strings. A shorter version is NUL-padded (it ends the C string early)."""
    lib = _libpython(interp)
    real = re.search(rb"(\d+\.\d+\.\d+)", Path(interp.path).resolve().parent.parent.name.encode())
    assert real is not None
    old_v = real.group(1)
    new_v = version.encode().ljust(len(old_v), b"\0")
    old_minor = "{}.{}".format(*interp.version).encode()
    new_minor = ".".join(version.split(".")[:2]).encode()
    soname = lib.name.encode()
    new_soname = soname.replace(old_minor, new_minor)

    def edit_lib(data: bytes) -> bytes:
        return _replace(_replace(data, old_v, new_v), soname, new_soname)

    def edit_exe(data: bytes) -> bytes:
        return _replace(data, soname, new_soname)

    exe_name = Path(interp.path).name.replace(old_minor.decode(), new_minor.decode())
    return _fake(interp, where, edit_lib, edit_exe, new_soname.decode(), exe_name)


def exporting(interp: Interpreter, renames: dict[str, str], where: Path) -> Fake:
    """``interp`` whose libpython exports each of ``renames``' values in place of its key
    (a function of the same length nothing calls here): how a build of another flavour
    looks from outside. The names are edited in .dynstr; the GNU hash table, which keeps
    the old names' hashes, is marked as no hash table in the section headers, so a reader
    scans .dynsym instead (the dynamic loader goes by DT_GNU_HASH, and still runs it)."""
    lib = _libpython(interp)

    def edit_lib(data: bytes) -> bytes:
        for old, new in renames.items():
            data = _replace(data, b"\0" + old.encode() + b"\0", b"\0" + new.encode() + b"\0")
        return _unhash(data, lib)

    return _fake(interp, where, edit_lib, lambda d: d, lib.name, Path(interp.path).name)


def _unhash(data: bytes, path: Path) -> bytes:
    with path.open("rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".gnu.hash")
        at = elf["e_shoff"] + index * elf["e_shentsize"] + 4  # sh_type follows sh_name
    out = bytearray(data)
    struct.pack_into("<I", out, at, SHT_PROGBITS)
    return bytes(out)


def remove(where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)

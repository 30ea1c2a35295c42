"""Build the test-only C extension (tests/native/spinext.c) for one interpreter, with
the machine's compiler, in a temporary directory: what ``--native`` tests record."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pythons import Interpreter, pyenv_root

SOURCE = Path(__file__).resolve().parent / "native" / "spinext.c"


def _config(interp: Interpreter) -> tuple[str, str]:
    """(its include directory, its extension suffix)."""
    out = subprocess.run(
        [interp.path, "-c", "import sysconfig as s; print(s.get_paths()['include']); "
         "print(s.get_config_var('EXT_SUFFIX'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return out[0], out[1]


def headers_for(interp: Interpreter) -> str | None:
    """A directory holding Python.h for ``interp``'s ABI: its own, or (Debian's stripped
    builds ship none) a pyenv build of the same minor version, whose ABI it shares (the
    same non-debug configuration, ``cpython-3XY-x86_64-linux-gnu``)."""
    own, _ = _config(interp)
    if (Path(own) / "Python.h").exists():
        return own
    major, minor = interp.version
    for inc in sorted(
        pyenv_root().glob(f"versions/{major}.{minor}.*/include/python{major}.{minor}")
    ):
        if (inc / "Python.h").exists():
            return str(inc)
    return None


def build(interp: Interpreter, into: Path) -> Path:
    """Compile spinext for ``interp`` into ``into``; the directory to put on sys.path.

    Raises LookupError (a skip's reason) when no compiler or no headers exist for it."""
    cc = shutil.which("cc")
    if cc is None:
        raise LookupError("no C compiler (cc) on this machine")
    inc = headers_for(interp)
    if inc is None:
        raise LookupError(
            f"no Python.h for CPython {interp.version[0]}.{interp.version[1]}: {interp.path} "
            "ships no headers and no pyenv build of that version exists"
        )
    _, suffix = _config(interp)
    out = into / f"spinext{suffix}"
    subprocess.run(
        [cc, "-O2", "-g", "-fPIC", "-shared", f"-I{inc}",
         str(SOURCE), "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return into

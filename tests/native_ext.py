"""Build the test-only C extension (tests/native/spinext.c) for one interpreter, with
the machine's compiler, in a temporary directory: what ``--native`` tests record."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pythons import PY314_CACHE, Interpreter, pyenv_root

SOURCE = Path(__file__).resolve().parent / "native" / "spinext.c"
ROOT = Path(__file__).resolve().parent.parent


def collapsed(trace: Path, out: Path, *flags: str) -> str:
    """``flamekit convert --to collapsed`` of a --native trace (with ``flags``, such as
    ``--native-lines``): the folded text, the converter having exited 0."""
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "convert", *flags, "--to", "collapsed", "-o",
         str(out), str(trace)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out.read_text()


def _config(interp: Interpreter) -> tuple[str, str]:
    """(its include directory, its extension suffix)."""
    out = subprocess.run(
        [interp.path, "-c", "import sysconfig as s; print(s.get_paths()['include']); "
         "print(s.get_config_var('EXT_SUFFIX'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return out[0], out[1]


def _debian_dev(interp: Interpreter) -> list[str]:
    """Debian's own headers for a Debian build unpacked by ``get-python314.sh``: its
    ``libpython3.X-dev``, fetched once with the same private apt state and unpacked
    beside it (no pyenv build of 3.14 exists to lend its headers). Empty if that fails."""
    major, minor = interp.version
    root = PY314_CACHE / "root"
    inc = root / "usr" / "include"
    if not Path(interp.path).resolve().is_relative_to(PY314_CACHE.resolve()):
        return []
    if not (inc / f"python{major}.{minor}" / "Python.h").exists():
        apt = PY314_CACHE / "apt"
        debs = PY314_CACHE / "dev-debs"
        debs.mkdir(exist_ok=True)
        opts = [
            "-o", f"Dir::Etc::SourceList={apt / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"Dir::State::Lists={apt / 'lists'}",
            "-o", f"Dir::Cache={apt / 'cache'}", "-o", "Dir::State::status=/var/lib/dpkg/status",
            "-o", "APT::Sandbox::User=root", "-q",
        ]  # fmt: skip
        got = subprocess.run(
            ["apt-get", *opts, "download", f"libpython{major}.{minor}-dev"],
            cwd=debs, capture_output=True,
        )  # fmt: skip
        for deb in sorted(debs.glob("*.deb")) if got.returncode == 0 else []:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    if not (inc / f"python{major}.{minor}" / "Python.h").exists():
        return []
    # Debian's pyconfig.h includes its multiarch one by a path from the include root
    return [str(inc / f"python{major}.{minor}"), str(inc)]


def headers_for(interp: Interpreter) -> list[str]:
    """The include directories holding Python.h for ``interp``'s ABI: its own; for
    Debian's 3.14, Debian's dev package; or (the system 3.11 ships none) a pyenv build of
    the same minor version, whose ABI it shares (the same non-debug configuration,
    ``cpython-3XY-x86_64-linux-gnu``). Empty when none is found."""
    debian = _debian_dev(interp)
    if debian:
        return debian
    own, _ = _config(interp)
    if (Path(own) / "Python.h").exists():
        return [own]
    major, minor = interp.version
    for inc in sorted(
        pyenv_root().glob(f"versions/{major}.{minor}.*/include/python{major}.{minor}")
    ):
        if (inc / "Python.h").exists():
            return [str(inc)]
    return []


def build(interp: Interpreter, into: Path) -> Path:
    """Compile spinext for ``interp`` into ``into``; the directory to put on sys.path.

    Raises LookupError (a skip's reason) when no compiler or no headers exist for it."""
    cc = shutil.which("cc")
    if cc is None:
        raise LookupError("no C compiler (cc) on this machine")
    inc = headers_for(interp)
    if not inc:
        raise LookupError(
            f"no Python.h for CPython {interp.version[0]}.{interp.version[1]}: {interp.path} "
            "ships no headers, no Debian dev package could be fetched for it and no pyenv build "
            "of that version exists"
        )
    _, suffix = _config(interp)
    out = into / f"spinext{suffix}"
    subprocess.run(
        [cc, "-O2", "-g", "-fPIC", "-shared", *(f"-I{d}" for d in inc),
         str(SOURCE), "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return into

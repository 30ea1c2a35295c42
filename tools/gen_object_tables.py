#!/usr/bin/env python3
"""Regenerate flamekit/record/tables/objects.py from real CPython headers.

The object reader (flamekit/record/objects/) reads str, bytes, int, float, tuple, list,
dict, set, cell, module and instance objects and type names of the target (for code
records, thread names and frames' local variables, whose slots and names it also finds
in frames and code objects); the offsets it needs are not in
flamekit/record/tables/layouts.py (which covers the stack walk), so they get their own
table, measured the same way: tools/object_probe.c is compiled with offsetof() against
each interpreter's own headers (Py_BUILD_CORE, internal structs visible), run, and its
printed dict collected. One entry per minor version; the newest patch wins.

Header sets come from:

* every ``$(pyenv root)/versions/X.Y.Z`` (2.7, 3.6-3.13 here);
* ``--include X.Y=DIR[:DIR...]`` for any other set, e.g. Debian's 3.14 headers;
* ``--py314-prefix PREFIX``: the prefix made by shared/tools/get-python314.sh; its private
  apt state is used to ``apt-get download`` the matching libpython3.14-dev and
  python3.14-dev packages into a temporary directory (nothing is installed), and their
  headers are probed. That is how the committed 3.14 entry was made.

Without 3.14 headers (the usual case) the committed 3.14 entry is kept as it is, and
--check compares it with itself.

Usage: python tools/gen_object_tables.py [--check] [--pyenv-root DIR] [--cc CC]
           [--include 3.14=DIR:DIR] [--py314-prefix /opt/flamekit-py314]

--check exits 1 if the module on disk differs from what would be generated. Needs a C
compiler; x86_64 Linux.
"""

from __future__ import annotations

import argparse
import ast
import os
import pprint
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tools" / "object_probe.c"
TARGET = ROOT / "flamekit" / "record" / "tables" / "objects.py"
MINORS = [(2, 7), (3, 6), (3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14)]

HEADER = '''"""Offsets for reading CPython objects from another process: GENERATED.

Do not edit: regenerate with ``python tools/gen_object_tables.py`` (see its docstring;
3.14 comes from Debian's libpython3.14-dev headers via --py314-prefix). It compiles
tools/object_probe.c with offsetof() against each interpreter's headers. Keys are read
by ``flamekit.record.objects``; "source" names the headers used. x86_64, default (GIL,
non-debug) builds. For 3.13+ the reader prefers the target's own _Py_DebugOffsets where
they have a field (sys.modules, type, tuple, list, dict, float, int, bytes, str, code
argcount and localsplus names and kinds, frame localsplus; 3.14: set).
"""

# fmt: off
'''


def pyenv_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / ".pyenv"


def pyenv_headers(root: Path) -> dict[tuple[int, int], tuple[str, list[Path]]]:
    """(label, include dirs) of the newest installed patch release of each minor."""
    best: dict[tuple[int, int], tuple[tuple[int, ...], Path]] = {}
    versions = root / "versions"
    if not versions.is_dir():
        return {}
    for d in versions.iterdir():
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", d.name)
        if not m:
            continue
        v = tuple(int(x) for x in m.groups())
        key = (v[0], v[1])
        if key in MINORS and (key not in best or v > best[key][0]):
            best[key] = (v, d)
    out = {}
    for key, (_, prefix) in sorted(best.items()):
        includes = sorted((prefix / "include").glob("python*"))
        if includes:
            out[key] = (f"CPython {prefix.name} headers", [includes[0]])
    return out


def debian314_headers(prefix: Path, work: str) -> tuple[str, list[Path]]:
    """Download (not install) Debian's 3.14 dev packages with the prefix's apt state."""
    apt = prefix / "apt"
    if not (apt / "sources.list").exists():
        raise SystemExit(f"{prefix}: no apt/sources.list (made by get-python314.sh)")
    opts = [
        f"-o=Dir::Etc::SourceList={apt / 'sources.list'}",
        "-o=Dir::Etc::SourceParts=/dev/null",
        f"-o=Dir::State::Lists={apt / 'lists'}",
        f"-o=Dir::Cache={apt / 'cache'}",
        "-o=Dir::State::status=/var/lib/dpkg/status",
        "-o=APT::Sandbox::User=root",
        "-q",
    ]
    debs = Path(work) / "debs"
    debs.mkdir()
    subprocess.run(
        ["apt-get", *opts, "download", "libpython3.14-dev", "python3.14-dev"],
        cwd=debs,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    root = Path(work) / "root"
    version = ""
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        m = re.match(r"libpython3\.14-dev_([^_]+)_", deb.name)
        if m:
            version = m.group(1)
    inc = root / "usr" / "include"
    return f"Debian libpython3.14-dev {version} headers", [inc / "python3.14", inc]


def probe(includes: list[Path], cc: str, workdir: str, tag: str) -> dict[str, int]:
    exe = os.path.join(workdir, f"probe-{tag}")
    cmd = [cc, "-O0", "-w", *(f"-I{d}" for d in includes), "-o", exe, str(PROBE)]
    subprocess.run(cmd, check=True)
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def render(tables: dict[str, dict[str, object]]) -> str:
    body = pprint.pformat(tables, width=96, sort_dicts=False)
    return HEADER + "TABLES = " + body + "\n# fmt: on\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the module is stale")
    ap.add_argument("--pyenv-root", help="default: $(pyenv root)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--include", action="append", default=[], metavar="X.Y=DIR[:DIR]")
    ap.add_argument("--py314-prefix", help="get-python314.sh prefix (downloads headers)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as work:
        sets = pyenv_headers(pyenv_root(args.pyenv_root))
        for spec in args.include:
            minor, _, dirs = spec.partition("=")
            major_s, minor_s = minor.split(".")
            paths = [Path(d) for d in dirs.split(":") if d]
            sets[(int(major_s), int(minor_s))] = (f"headers in {paths[0]}", paths)
        if args.py314_prefix:
            sets[(3, 14)] = debian314_headers(Path(args.py314_prefix), work)
        tables: dict[str, dict[str, object]] = {}
        for (major, minor), (label, includes) in sorted(sets.items()):
            values = probe(includes, args.cc, work, f"{major}.{minor}")
            hexv = values["version_hex"]
            if (hexv >> 24, hexv >> 16 & 0xFF) != (major, minor):
                raise SystemExit(f"{label}: headers are {hexv:#x}, not {major}.{minor}")
            entry: dict[str, object] = {"source": label}
            entry.update(values)
            tables[f"{major}.{minor}"] = entry
    missing = [f"{a}.{b}" for a, b in MINORS if f"{a}.{b}" not in tables]
    if missing:
        kept = " (their committed entries are kept)" if TARGET.exists() else ""
        print(f"note: no headers for {', '.join(missing)} here{kept}", file=sys.stderr)
    if args.check:
        # Entries we could not regenerate here are compared as they are on disk.
        old_text = TARGET.read_text()
        old = ast.literal_eval(old_text.split("TABLES = ", 1)[1].split("\n# fmt: on", 1)[0])
        merged = {k: tables.get(k, v) for k, v in old.items()}
        merged.update(tables)
        if old_text != render(merged):
            print(f"{TARGET} is stale: run tools/gen_object_tables.py", file=sys.stderr)
            return 1
        return 0
    if TARGET.exists() and missing:
        # Keep entries for header sets not available on this run (e.g. 3.14 without
        # --py314-prefix) instead of dropping them.
        old_text = TARGET.read_text()
        old = ast.literal_eval(old_text.split("TABLES = ", 1)[1].split("\n# fmt: on", 1)[0])
        for k, v in old.items():
            tables.setdefault(k, v)
        tables = dict(sorted(tables.items(), key=lambda kv: tuple(map(int, kv[0].split(".")))))
    TARGET.write_text(render(tables))
    print(f"wrote {TARGET.relative_to(ROOT)}: {', '.join(tables)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

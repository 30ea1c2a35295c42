#!/usr/bin/env python3
"""Regenerate flamekit/record/tables/layouts.py from the interpreters installed with pyenv.

For every ``$(pyenv root)/versions/X.Y.Z`` it compiles tools/layout_probe.c against that
build's own headers (``include/pythonX.Y[m]``, with Py_BUILD_CORE so the internal structs
are visible), runs it, and collects the offsets it prints. The table module is then
rewritten with one entry per minor version (the newest patch release installed wins).

Usage: python tools/gen_layouts.py [--check] [--pyenv-root DIR] [--cc CC]

--check exits 1 if the module on disk differs from what would be generated, so CI can
prove the committed table is reproducible. Needs a C compiler; run on x86_64 Linux.
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
PROBE = ROOT / "tools" / "layout_probe.c"
TARGET = ROOT / "flamekit" / "record" / "tables" / "layouts.py"

#: The range the generated table covers. 3.13+ also gets an entry: the recorder uses
#: _Py_DebugOffsets read from the target instead, and the tests compare the two.
MINORS = [(2, 7), (3, 6), (3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]

HEADER = '''"""Struct offsets of CPython builds, per minor version: GENERATED, do not edit.

Regenerate with ``python tools/gen_layouts.py``: it compiles tools/layout_probe.c with
offsetof() against each installed interpreter's own headers. ``flamekit.record.layout``
turns an entry into a Layout. Keys are Layout field names; "source" names the build.
x86_64, default (GIL, non-debug) builds.
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


def installed(root: Path) -> dict[tuple[int, int], Path]:
    """The newest installed patch release of each minor we cover."""
    best: dict[tuple[int, int], tuple[tuple[int, ...], Path]] = {}
    for d in (root / "versions").iterdir():
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", d.name)
        if not m:
            continue
        v = tuple(int(x) for x in m.groups())
        key = (v[0], v[1])
        if key in MINORS and (key not in best or v > best[key][0]):
            best[key] = (v, d)
    return {k: p for k, (_, p) in sorted(best.items())}


def probe(prefix: Path, cc: str, workdir: str) -> dict[str, int]:
    includes = sorted((prefix / "include").glob("python*"))
    if not includes:
        raise SystemExit(f"{prefix}: no include/pythonX.Y directory")
    exe = os.path.join(workdir, f"probe-{prefix.name}")
    cmd = [cc, "-O0", "-w", f"-I{includes[0]}", "-o", exe, str(PROBE)]
    subprocess.run(cmd, check=True)
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def render(tables: dict[str, dict[str, object]]) -> str:
    body = pprint.pformat(tables, width=96, sort_dicts=False)
    return HEADER + "TABLES = " + body + "\n# fmt: on\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if layouts.py is stale")
    ap.add_argument("--pyenv-root", help="default: $(pyenv root)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args(argv)

    tables: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as work:
        for (major, minor), prefix in installed(pyenv_root(args.pyenv_root)).items():
            values = probe(prefix, args.cc, work)
            entry: dict[str, object] = {"source": f"CPython {prefix.name} headers"}
            entry.update(values)
            tables[f"{major}.{minor}"] = entry
    missing = [f"{a}.{b}" for a, b in MINORS if f"{a}.{b}" not in tables]
    if missing:
        print(f"warning: no installed build for {', '.join(missing)}", file=sys.stderr)
    text = render(tables)
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run tools/gen_layouts.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}: {', '.join(tables)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

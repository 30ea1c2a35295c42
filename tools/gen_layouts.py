#!/usr/bin/env python3
"""Regenerate flamekit/record/tables/layouts.py from the interpreters installed with pyenv.

For every ``$(pyenv root)/versions/X.Y.Z`` it compiles tools/layout_probe.c against that
build's own headers (``include/pythonX.Y[m]``, with Py_BUILD_CORE so the internal structs
are visible), runs it, and collects the offsets it prints. The table module is then
rewritten with one entry per minor version (the newest patch release installed wins).

Which builds an entry holds for: the headers are those of a release build (the script
stops if they are not). They are compiled once more as ``./configure --with-pydebug``
would compile them (``-DPy_DEBUG``), with tools/object_probe.c too (the object reader's
offsets); a flavour whose every offset comes out the same is listed in the entry's
"builds". Measured: a debug build of 2.7-3.7 has Py_TRACE_REFS and its two extra pointers
at the head of every object, so nothing is where a release build has it; from 3.8 on a
debug build keeps the release layout. The recorder refuses a target whose flavour (told
from its exported symbols: flamekit.record.flavour) its entry does not list.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tools" / "layout_probe.c"
#: The object reader's probe: a flavour shares an entry only if these offsets agree too.
OBJECT_PROBE = ROOT / "tools" / "object_probe.c"
TARGET = ROOT / "flamekit" / "record" / "tables" / "layouts.py"

#: The range the generated table covers. 3.13+ also gets an entry: the recorder uses
#: _Py_DebugOffsets read from the target instead, and the tests compare the two.
MINORS = [(2, 7), (3, 6), (3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]

#: Compiler flags of the other build flavours, as their ./configure option sets them.
OTHER_BUILDS = {"--with-pydebug": ["-DPy_DEBUG"]}

HEADER = '''"""Struct offsets of CPython builds, per minor version: GENERATED, do not edit.

Regenerate with ``python tools/gen_layouts.py``: it compiles tools/layout_probe.c with
offsetof() against each installed interpreter's own headers. ``flamekit.record.layout``
turns an entry into a Layout. Keys are Layout field names; "source" names the headers,
"builds" the build flavours the offsets hold for (flamekit.record.flavour names them):
x86_64, GIL builds, derived from release builds' headers, compiled as such and as
--with-pydebug compiles them.
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


def probe(prefix: Path, cc: str, workdir: str, source: Path, flags: list[str]) -> dict:
    includes = sorted((prefix / "include").glob("python*"))
    if not includes:
        raise SystemExit(f"{prefix}: no include/pythonX.Y directory")
    exe = os.path.join(workdir, f"probe-{prefix.name}-{source.stem}{''.join(flags)}")
    cmd = [cc, "-O0", "-w", *flags, f"-I{includes[0]}", "-o", exe, str(source)]
    subprocess.run(cmd, check=True)
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def flavour(values: dict[str, int]) -> str:
    """The name flamekit.record.flavour gives a build with the probe's macros in effect
    (the probe's "build_" keys, taken out of ``values``)."""
    debug, trace = values.pop("build_debug"), values.pop("build_trace_refs")
    return "+".join(n for n, on in (("debug", debug), ("trace-refs", trace)) if on) or "release"


def entry_for(prefix: Path, cc: str, work: str) -> dict[str, object]:
    """The table entry of one installed build: its release offsets, and the flavours they
    hold for (the probes' every offset the same when compiled as that flavour)."""
    jobs = [(src, flags) for flags in ([], *OTHER_BUILDS.values()) for src in (PROBE, OBJECT_PROBE)]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        outs = list(pool.map(lambda job: probe(prefix, cc, work, *job), jobs))
    release = outs[0]
    if flavour(release) != "release":
        raise SystemExit(f"{prefix}: the headers of a debug build: the table is of release builds")
    builds = ["release"]
    for i in range(2, len(jobs), 2):
        name = flavour(outs[i])
        if outs[i] == release and outs[i + 1] == outs[1] and name not in builds:
            builds.append(name)
    return {"source": f"CPython {prefix.name} headers", "builds": builds, **release}


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
            tables[f"{major}.{minor}"] = entry_for(prefix, args.cc, work)
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

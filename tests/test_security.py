"""Issue #7 (security): a trace is data, never code; outputs are not open to the world.

A .fkt file may come from anyone (a colleague's machine, a bug report), and flamekit
often runs as root, so nothing read from a trace may be executed or unpickled; and
every file flamekit writes (traces, converted profiles) gets the user's umask and never
the world's write bit.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flamekit"
EXAMPLE = ROOT / "formats" / "examples" / "synthetic-small.fkt"

#: Modules that turn bytes into running code or arbitrary objects.
CODE_LOADERS = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
#: Builtins that run code. synthetic.py compiles its own constant source text (the example
#: program it fakes), never anything read from a trace: that one use is allowed.
CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}
#: The CLI and the format registry import modules of flamekit's own by names from a fixed
#: table and from the package's own folder, never from input.
ALLOWED_RUNNERS = {
    ("flamekit/trace/synthetic.py", "compile"),
    ("flamekit/commands/group.py", "importlib.import_module"),
    ("flamekit/convert/base.py", "importlib.import_module"),
}


def _uses(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            found.append((node.func.id, node.lineno))
        elif isinstance(node, ast.Attribute) and node.attr in ("import_module", "load"):
            if isinstance(node.value, ast.Name) and node.value.id in ("importlib", "yaml"):
                found.append((f"{node.value.id}.{node.attr}", node.lineno))
    return found


def test_nothing_in_flamekit_executes_or_unpickles():
    offenders = []
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 30  # the scan really saw the package
    for path in sources:
        rel = path.relative_to(ROOT).as_posix()
        for name, line in _uses(path):
            if (rel, name) in ALLOWED_RUNNERS:
                continue
            if name in CODE_LOADERS or name.startswith(("importlib.", "yaml.")):
                offenders.append(f"{rel}:{line}: {name}")
            elif name in CODE_RUNNERS:
                offenders.append(f"{rel}:{line}: {name}()")
    assert not offenders, offenders


def test_msgpack_extension_types_are_refused(tmp_path: Path):
    """msgpack's ext types are the one hook a decoder could turn into objects: the reader
    allows none, so a trace holding one is a corrupt file (one line, exit 2)."""
    import msgpack

    from flamekit.errors import TraceError
    from flamekit.trace import TraceReader

    path = tmp_path / "ext.fkt"
    pickled_one = b"\x80\x04K\x01."
    path.write_bytes(EXAMPLE.read_bytes() + msgpack.packb(msgpack.ExtType(1, pickled_one)))
    with pytest.raises(TraceError, match="max_ext_len"):
        for _ in TraceReader(path):
            pass
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "info", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(path) in r.stderr, r.stderr


def _flamekit(*args: str, umask: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        preexec_fn=lambda: os.umask(umask),
    )


@pytest.mark.parametrize("umask,mode", [(0o027, 0o640), (0o022, 0o644), (0o000, 0o664)])
def test_traces_are_private_and_converted_outputs_follow_the_umask(
    tmp_path: Path, umask: int, mode: int
):
    """A trace holds the target's code paths, function and thread names: recorded as root
    from another user's process, a world-readable one (0644, as before) gave them away.
    Traces are 0600 whatever the umask; what convert writes is meant to be shared, and
    follows the umask (never world-writable)."""
    trace = tmp_path / "run.fkt"
    r = _flamekit(
        "record", "-q", "-o", str(trace), "--", sys.executable, "-c", "sum(range(10**6))",
        umask=umask, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert trace.stat().st_mode & 0o777 == 0o600
    out = tmp_path / "run.svg"
    r = _flamekit("convert", str(trace), "--to", "svg", "-o", str(out), umask=umask, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == mode

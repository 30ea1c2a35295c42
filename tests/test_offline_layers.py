"""The offline layers stand on their own: no click, no recorder, no command line.

A trace recorded on one machine is analysed on another, from the CLI or from Python; the
modules that do it must not pull in the command-line library or the live-process side.
Checked twice: statically (every import statement, at any depth, of every module), and by
importing every module in a fresh interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flamekit"
#: The offline side, and the single modules it consists of beside its packages.
OFFLINE = ["analysis", "convert", "diffing", "trace", "symbolize", "api.py", "output.py"]
#: What none of them may import.
FORBIDDEN = ("click", "flamekit.record", "flamekit.commands", "flamekit.cli")


def offline_modules() -> list[Path]:
    out: list[Path] = []
    for name in OFFLINE:
        p = PACKAGE / name
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def imported_names(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement in ``path`` names, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node.lineno))
            # ``from flamekit import record`` names the package in the alias
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return found


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_no_offline_module_imports_click_or_the_recorder():
    modules = offline_modules()
    assert len(modules) > 25  # the scan really saw the layers
    offenders = [
        f"{p.relative_to(ROOT)}:{line}: {name}"
        for p in modules
        for name, line in imported_names(p)
        if forbidden(name)
    ]
    assert not offenders, offenders


def test_the_scan_catches_a_forbidden_import(tmp_path: Path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from flamekit import record\n    import click.testing\n")
    assert [n for n, _ in imported_names(p) if forbidden(n)] == ["flamekit.record", "click.testing"]


def test_importing_every_offline_module_loads_neither():
    names = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in offline_modules()
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"

"""The dependency rules of docs/architecture.md, checked on every import in the package.

Every ``import`` and ``from ... import`` in flamekit's own modules, at module level or
inside a function (the CLI imports commands lazily, and a lazy import is a dependency
all the same), is mapped to the layer it comes from and the one it names. A rule broken
fails the test with the file, the line and the rule. Module-level imports must also form
no loop: a loop makes the import order matter and a half-initialised module visible.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flamekit"

#: Layers, most specific prefix first: a module belongs to the first that matches.
LAYERS: list[tuple[str, str]] = [
    ("flamekit.record.proc", "record.proc"),
    ("flamekit.record.tables", "record.tables"),
    ("flamekit.record", "record"),
    ("flamekit.trace", "trace"),
    ("flamekit.symbolize", "symbolize"),
    ("flamekit.analysis", "analysis"),
    ("flamekit.convert", "convert"),
    ("flamekit.diffing", "diffing"),
    ("flamekit.commands", "commands"),
    ("flamekit.cli", "cli"),
    ("flamekit.__main__", "cli"),
    ("flamekit.api", "api"),
    ("flamekit", "base"),  # errors, codeformat, output, the package itself
]

#: What each layer may import, of flamekit's layers. Anything not listed is forbidden.
#: Third-party modules are checked separately (CLICK_ALLOWED).
ALLOWED: dict[str, set[str]] = {
    "base": {"base", "api"},  # flamekit/__init__.py offers flamekit.open (lazily)
    "record.tables": set(),
    "record.proc": {"record.proc", "base"},
    "record": {"record", "record.proc", "record.tables", "trace", "base"},
    "trace": {"trace", "base"},
    "symbolize": {"symbolize", "trace", "base"},
    "analysis": {"analysis", "symbolize", "trace", "base"},
    "convert": {"convert", "analysis", "symbolize", "trace", "base"},
    "diffing": {"diffing", "convert", "analysis", "symbolize", "trace", "base"},
    "api": {"api", "analysis", "convert", "diffing", "symbolize", "trace", "base"},
    "commands": {
        "commands",
        "api",
        "record",
        "record.proc",
        "analysis",
        "convert",
        "diffing",
        "symbolize",
        "trace",
        "base",
    },  # fmt: skip
    "cli": {"cli", "commands", "base"},
}
#: Only the command line speaks click.
CLICK_ALLOWED = {"commands", "cli"}


@dataclass(frozen=True)
class Import:
    module: str  #: the importing module
    target: str  #: the imported module (for ``from X import y``: X.y if that is a module)
    line: int
    top_level: bool  #: at module level (not inside a function or class body)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool, modules: set[str]) -> Iterator[Import]:
    """Every import in ``source``, resolved to absolute module names."""
    tree = ast.parse(source)
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, id(node) in top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                full = f"{prefix}.{alias.name}"
                yield Import(
                    module, full if full in modules else prefix, node.lineno, id(node) in top
                )


def layer_of(module: str) -> str | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def package_imports(root: Path = ROOT) -> list[Import]:
    files = sorted((root / "flamekit").rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    out: list[Import] = []
    for f in files:
        name = module_name(f, root)
        out += imports_of(f.read_text(encoding="utf-8"), name, f.name == "__init__.py", modules)
    return out


def violations(imports: Iterable[Import]) -> list[str]:
    """One line per import that breaks a rule."""
    bad = []
    for imp in imports:
        src = layer_of(imp.module)
        if src is None:
            continue
        if imp.target == "click" or imp.target.startswith("click."):
            if src not in CLICK_ALLOWED:
                bad.append(f"{imp.module}:{imp.line}: {src} imports click")
            continue
        dst = layer_of(imp.target)
        if dst is not None and dst not in ALLOWED[src]:
            bad.append(f"{imp.module}:{imp.line}: {src} imports {imp.target} ({dst})")
    return bad


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Loops among flamekit's module-level imports (a module importing a package imports
    its ``__init__`` too, which is the package's own name here)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.top_level and imp.target.startswith("flamekit") and imp.target != imp.module:
            graph.setdefault(imp.module, set()).add(imp.target)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    modules = {module_name(f, ROOT) for f in PACKAGE.rglob("*.py")}
    assert all(layer_of(m) is not None for m in modules)
    assert "flamekit.record.proc.memory" in modules  # the walk saw the whole tree


def test_the_package_keeps_the_dependency_rules() -> None:
    bad = violations(package_imports())
    assert not bad, "imports that break docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_loop() -> None:
    loops = cycles(package_imports())
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(c) for c in loops)


# -- the checker itself: it must be able to fail ---------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "rel, text, words",
    [
        (
            "flamekit/convert/x.py",
            "from flamekit.record.walk import StackWalker\n",
            "convert imports",
        ),
        (
            "flamekit/trace/x.py",
            "def f():\n    import flamekit.analysis.profile\n",
            "trace imports",
        ),
        ("flamekit/analysis/x.py", "import click\n", "analysis imports click"),
        ("flamekit/record/x.py", "from flamekit.commands import record\n", "record imports"),
        ("flamekit/record/proc/x.py", "from flamekit.record import walk\n", "record.proc imports"),
        ("flamekit/record/x.py", "from ..analysis import profile\n", "record imports"),
        ("flamekit/record/x.py", "from ..symbolize import Symbolizer\n", "record imports"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path: Path, rel: str, text: str, words: str) -> None:
    root = _tree(tmp_path, {"flamekit/__init__.py": "", rel: text})
    bad = violations(package_imports(root))
    assert len(bad) == 1 and words in bad[0], bad


def test_a_loop_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "flamekit/__init__.py": "",
            "flamekit/trace/a.py": "from flamekit.trace import b\n",
            "flamekit/trace/b.py": "import flamekit.trace.a\n",
            "flamekit/trace/c.py": "def f():\n    from flamekit.trace import a\n",
        },
    )
    loops = cycles(package_imports(root))
    assert loops == [["flamekit.trace.a", "flamekit.trace.b", "flamekit.trace.a"]], loops


def test_importing_the_offline_side_loads_no_click_and_no_recorder() -> None:
    """What the static rules promise, seen at run time in a fresh interpreter: importing
    every module of the offline side (and the Python API) loads neither click nor the
    live-process side, so a trace is analysed where neither could run."""
    offline = ["analysis", "convert", "diffing", "trace", "symbolize", "api.py", "output.py"]
    files: list[Path] = []
    for name in offline:
        p = PACKAGE / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    names = [module_name(f, ROOT) for f in files]
    assert len(names) > 25  # it saw the layers
    forbidden = ("click", "flamekit.record", "flamekit.commands", "flamekit.cli")
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"

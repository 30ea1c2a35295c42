"""File names relative to their import roots (flamekit.analysis.filenames), in every
output, ``top``, ``diff`` and ``dump``; ``--full-filenames`` keeps them whole.

The pure functions are checked with hypothesis (names stay distinct, a short name is the
path less a root, the longest root wins); a real recording of a target that runs code
from its own directory, the standard library, one virtualenv's package and two
virtualenvs' copies of one package checks what each output shows.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.analysis.filenames import display_names, import_roots, script_of, shorten
from flamekit.convert.base import formats

# -- the pure functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, cmdline, shown",
    [
        (
            "/home/app/venv/lib/python3.12/site-packages/pylint/__init__.py",
            [],
            "pylint/__init__.py",
        ),
        ("/usr/lib/python3/dist-packages/requests/api.py", [], "requests/api.py"),
        ("/usr/lib/python3.11/json/decoder.py", [], "json/decoder.py"),
        ("/opt/py/lib64/python3.13t/threading.py", [], "threading.py"),
        ("/srv/app/main.py", ["python3", "/srv/app/main.py"], "main.py"),
        ("/srv/app/lib/util.py", ["python3", "-X", "dev", "/srv/app/main.py", "-v"], "lib/util.py"),
        ("/srv/app/tool/cli.py", ["python", "-m", "tool.cli"], "tool/cli.py"),
        ("/srv/app/tool/__main__.py", ["python", "-mtool"], "tool/__main__.py"),
        ("/cwd/app/service.py", ["python3", "app/service.py"], "service.py"),
        ("/srv/app/main.py", ["python3", "-c", "import main"], "/srv/app/main.py"),
        ("/srv/app/main.py", [], "/srv/app/main.py"),
        ("app/service.py", ["python3", "app/service.py"], "app/service.py"),
        ("<frozen importlib._bootstrap>", [], "<frozen importlib._bootstrap>"),
    ],
)
def test_each_root(path: str, cmdline: list[str], shown: str) -> None:
    assert display_names([path], import_roots([path], [cmdline])) == {path: shown}


def test_the_longest_root_wins_and_a_script_beside_its_venv_keeps_packages_short() -> None:
    site = "/home/app/venv/lib/python3.12/site-packages/pylint/lint.py"
    std = "/home/app/venv/lib/python3.12/os.py"
    main = "/home/app/run.py"
    roots = import_roots([site, std, main], [["python", main]])
    assert roots == {"/home/app", "/home/app/venv/lib/python3.12",
                     "/home/app/venv/lib/python3.12/site-packages"}  # fmt: skip
    assert display_names([site, std, main], roots) == {
        site: "pylint/lint.py",
        std: "os.py",
        main: "run.py",
    }


def test_two_venvs_copies_of_a_module_stay_apart() -> None:
    a = "/a/venv/lib/python3.12/site-packages/pkg/__init__.py"
    b = "/b/venv/lib/python3.12/site-packages/pkg/__init__.py"
    c = "/a/venv/lib/python3.12/site-packages/solo.py"
    names = display_names([a, b, c], import_roots([a, b, c], []))
    assert names == {a: a, b: b, c: "solo.py"}
    # a short name that is another file's whole name (a relative co_filename) too
    rel = "solo.py"
    assert display_names([c, rel], import_roots([c], [])) == {c: c, rel: rel}


@pytest.mark.parametrize(
    "cmdline, want",
    [
        (["python3", "x.py", "-c"], ("x.py", None)),
        (["python3", "-W", "error", "-u", "x.py"], ("x.py", None)),
        (["python3", "-m", "http.server", "8000"], (None, "http.server")),
        (["python3", "-c", "print(1)", "x.py"], (None, None)),
        (["python3"], (None, None)),
        ([], (None, None)),
    ],
)
def test_script_of(cmdline: list[str], want: tuple[str | None, str | None]) -> None:
    assert script_of(cmdline) == want


SEGMENT = st.sampled_from(["a", "b", "lib", "python3.12", "site-packages", "dist-packages", "x.py"])
PATHS = st.lists(
    st.lists(SEGMENT, min_size=1, max_size=6).map(lambda s: "/".join(s))
    | st.lists(SEGMENT, min_size=1, max_size=6).map(lambda s: "/" + "/".join(s)),
    max_size=12,
)
ROOTS = st.lists(st.lists(SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
                 max_size=5)  # fmt: skip


@given(paths=PATHS, roots=ROOTS)
def test_shown_names_are_distinct_and_each_the_path_less_a_root(
    paths: list[str], roots: list[str]
) -> None:
    names = display_names(paths, roots)
    assert set(names) == set(paths)
    assert len(set(names.values())) == len(names)  # nothing merges
    for p, name in names.items():
        assert name in (p, shorten(p, roots))
        if name != p:
            holding = [r for r in roots if p.startswith(r + "/")]
            longest = max(holding, key=len)
            assert p == f"{longest}/{name}" and name
    # a path is kept whole only when its short name is shared
    short = {p: shorten(p, roots) for p in names}
    for p, name in names.items():
        if name == p and short[p] != p:
            assert any(q != p and short[p] in (short[q], q) for q in names), (p, names)


@given(
    prefix=st.lists(SEGMENT, max_size=3).map(lambda s: "".join("/" + x for x in s)),
    where=st.sampled_from(
        [
            "lib/python3.12",
            "lib/python3.13t",
            "lib/python3/dist-packages",
            "lib/python3.12/site-packages",
        ]
    ),  # fmt: skip
    rel=st.lists(st.sampled_from(["pkg", "mod", "sub"]), max_size=3).map(
        lambda s: "".join(x + "/" for x in s) + "m.py"
    ),
)
def test_an_installed_file_shows_as_its_module_path(prefix: str, where: str, rel: str) -> None:
    path = f"{prefix}/{where}/{rel}"
    assert display_names([path], import_roots([path], [])) == {path: rel}


# -- a real recording, every output -----------------------------------------------------

TARGET = """
import fractions, importlib.util, os, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "python%d.%d" % sys.version_info[:2]


def load(venv, name, as_name):
    path = os.path.join(HERE, venv, "lib", VERSION, "site-packages", name, "__init__.py")
    spec = importlib.util.spec_from_file_location(as_name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


import helper  # from the script's own directory
solo, pkg_a, pkg_b = load("venv_a", "solo", "solo"), load("venv_a", "pkg", "a"), load("venv_b", "pkg", "b")
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for mod in (helper, solo, pkg_a, pkg_b):
        mod.spin()
    sum(fractions.Fraction(1, n) for n in range(1, 80))
"""
SPIN = "def spin():\n    x = 0\n    for i in range(30000):\n        x += i\n    return x\n"
VERSION = "python{}.{}".format(*sys.version_info[:2])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The target's directory: target.py, helper.py, venv_a (pkg, solo) and venv_b (pkg)."""
    d = tmp_path_factory.mktemp("roots")
    (d / "target.py").write_text(textwrap.dedent(TARGET))
    (d / "helper.py").write_text(SPIN)
    for venv, name in (("venv_a", "pkg"), ("venv_a", "solo"), ("venv_b", "pkg")):
        pkg = d / venv / "lib" / VERSION / "site-packages" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(SPIN)
    return d


def site(tree: Path, venv: str, name: str) -> str:
    return str(tree / venv / "lib" / VERSION / "site-packages" / name / "__init__.py")


def flamekit(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "flamekit", *args], capture_output=True,
                          timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def recording(tree: Path) -> Path:
    out = tree / "run.fkt"
    r = flamekit("record", "-q", "-r", "200", "-d", "2", "-o", str(out), "--",
                 sys.executable, str(tree / "target.py"), "5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def shown(tree: Path, data: bytes, full: bool, copies: int = 2) -> None:
    """What an output shows: short names, the colliding copies whole; or all whole.
    ``copies``: how many of the two copies of pkg it shows (diff matches a file of any
    site-packages with the same file of another: the two merge there, as before)."""
    text = data.decode("utf-8", "replace")  # pprof: UTF-8 strings in a binary message
    a, b = site(tree, "venv_a", "pkg"), site(tree, "venv_b", "pkg")
    solo = site(tree, "venv_a", "solo")
    assert (a in text) + (b in text) == copies  # whole: their short names are the same
    if full:
        assert solo in text and str(tree / "helper.py") in text
        assert f"/lib/{VERSION}/fractions.py" in text
    else:
        assert "solo/__init__.py" in text and solo not in text
        assert "helper.py" in text and str(tree / "helper.py") not in text
        assert "fractions.py" in text and f"/lib/{VERSION}/fractions.py" not in text


@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
@pytest.mark.parametrize("fmt", list(formats()))
def test_every_output_shows_files_from_their_import_roots(
    tree: Path, recording: Path, fmt: str, full: bool
) -> None:
    r = flamekit("convert", str(recording), "--to", fmt, "-o", "-",
                 *(["--full-filenames"] if full else []))  # fmt: skip
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    shown(tree, gzip.decompress(r.stdout) if fmt == "pprof" else r.stdout, full)


@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
def test_top_and_diff_show_them_too(tree: Path, recording: Path, full: bool) -> None:
    opt = ["--full-filenames"] if full else []
    top = flamekit("top", str(recording), "-n", "0", *opt)
    assert top.returncode == 0, top.stderr
    shown(tree, top.stdout, full)
    script = f"<module> ({tree / 'target.py' if full else 'target.py'})"
    assert script in top.stdout.decode(), top.stdout
    for to in ("table", "json", "difffolded"):
        r = flamekit("diff", str(recording), str(recording), "--to", to, "--top", "0", "-o", "-",
                     *opt)  # fmt: skip
        assert r.returncode == 0, r.stderr
        shown(tree, r.stdout, full, copies=1)
    doc = json.loads(flamekit("diff", str(recording), str(recording), "--to", "json").stdout)
    assert all(row["status"] == "both" for row in doc["rows"])  # matched by the short name


@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
def test_dump_shows_them_too(tree: Path, full: bool) -> None:
    target = subprocess.Popen([sys.executable, str(tree / "target.py"), "60"],
                              stdout=subprocess.PIPE)  # fmt: skip
    solo = site(tree, "venv_a", "solo")
    want = f"({solo}:" if full else "(solo/__init__.py:"
    try:
        assert target.stdout is not None and target.stdout.readline() == b"ready\n"
        for _ in range(100):  # until a dump catches solo.spin (a quarter of the time)
            r = flamekit("dump", "-p", str(target.pid), *(["--full-filenames"] if full else []))
            assert r.returncode == 0, r.stderr
            seen = r.stdout.decode()
            if want in seen:
                break
    finally:
        target.kill()
        target.wait()
    assert want in seen, seen
    assert (f"({tree / 'target.py'}:" in seen) == full, seen
    assert ("(target.py:" in seen) == (not full), seen

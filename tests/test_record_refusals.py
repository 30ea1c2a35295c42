"""Targets flamekit has no layout for are refused in one line, never read with a wrong one.

A version without a table (3.5, 3.4, 2.6) or a build flavour the version's table does not
hold for (a --with-pydebug build of 2.7-3.7, whose objects have two more pointers in
front; a --with-trace-refs build of 3.8+) must stop ``record`` and ``dump`` with one line
naming the target's version and what flamekit supports. None is installed here, so the
targets are real pyenv interpreters edited to be them by every tell (tests/fake_builds.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fake_builds
import pytest
from pythons import Interpreter, legacy, recordable

from flamekit.errors import TargetError
from flamekit.record import layout as layoutmod
from flamekit.record.flavour import build_flavour, py2_unicode_size
from flamekit.record.layout import check_supported, support_statement
from flamekit.record.session import LAUNCH_WAIT_S
from flamekit.record.tables.layouts import TABLES
from flamekit.record.target import HeaderMismatch, open_target

PY27, PY36, PY37 = legacy()
PY38 = next(i for i in recordable() if i.version == (3, 8))
SUPPORT = "flamekit records CPython 2.7 and 3.6-3.14 (release builds; debug builds of 3.8-3.14)"
#: Exported functions of the right lengths that nothing calls in these targets.
AS_DEBUG = {"PyCapsule_SetContext": "_Py_NegativeRefcount"}
AS_TRACE_REFS = {"PyGrammar_LabelRepr": "_Py_PrintReferences"}
#: The target says what it is, then waits (its stdin open) without touching anything.
#: (Importing time maps 2.7's original libpython too: time.so links it by its name.)
PARK = "import sys, os; sys.stdout.write(sys.version.split()[0] + '\\n'); sys.stdout.flush(); "
PARK += "import time; os.read(0, 1)"


class Running:
    def __init__(self, fake: fake_builds.Fake) -> None:
        self.proc = subprocess.Popen(
            [*fake.argv, "-c", PARK],
            env=fake.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        #: what the target's own sys.version says: the fake is what it claims to be
        self.says = self.proc.stdout.readline().decode().strip()
        self.pid = self.proc.pid

    def libpythons(self) -> set[str]:
        with open(f"/proc/{self.pid}/maps") as f:
            return {line.split()[-1] for line in f if "libpython" in line}

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    where = tmp_path_factory.mktemp("fakes")
    made = {
        "3.5": fake_builds.other_version(PY36, "3.5.10", where / "3.5"),
        "3.4": fake_builds.other_version(PY36, "3.4.10", where / "3.4"),
        "2.6": fake_builds.other_version(PY27, "2.6.9", where / "2.6"),
        "2.7-debug": fake_builds.exporting(PY27, {**AS_DEBUG, **AS_TRACE_REFS}, where / "2.7d"),
        "3.6-debug": fake_builds.exporting(PY36, {**AS_DEBUG, **AS_TRACE_REFS}, where / "3.6d"),
        "3.7-debug": fake_builds.exporting(PY37, {**AS_DEBUG, **AS_TRACE_REFS}, where / "3.7d"),
        "3.8-trace-refs": fake_builds.exporting(PY38, AS_TRACE_REFS, where / "3.8t"),
        "3.8-debug": fake_builds.exporting(PY38, AS_DEBUG, where / "3.8d"),
    }
    running = {}
    try:
        for name, fake in made.items():
            running[name] = Running(fake)
        yield running
    finally:
        for r in running.values():
            r.close()
        fake_builds.remove(where)


def flamekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, text=True, timeout=60
    )


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flamekit: error: "), lines
    return lines[0]


@pytest.mark.parametrize("name, version", [("3.5", "3.5.10"), ("3.4", "3.4.10"), ("2.6", "2.6.9")])
def test_a_version_without_a_layout_is_refused(
    fakes: dict[str, Running], name: str, version: str, tmp_path: Path
) -> None:
    target = fakes[name]
    assert target.says == version
    out = tmp_path / "t.fkt"
    line = one_line(flamekit("record", "-p", str(target.pid), "-d", "1", "-o", str(out)))
    assert f"CPython {version} is not supported: {SUPPORT}" in line, line
    assert not out.exists() and not list(tmp_path.iterdir())
    assert target.proc.poll() is None  # left running, untouched


def test_a_launched_one_is_refused_at_once(tmp_path: Path) -> None:
    """Launched, a target is waited for until it is a Python (a wrapper may exec one, as
    env(1) does here); one flamekit has no layout for is refused then and there, not
    after that wait."""
    fake = fake_builds.other_version(PY27, "2.6.9", tmp_path / "fake")
    out = tmp_path / "t.fkt"
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-o", str(out), "--", *fake.command()]
        + ["-c", "import time; time.sleep(30)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - start
    line = one_line(r)
    assert f"CPython 2.6.9 is not supported: {SUPPORT}" in line, line
    assert took < LAUNCH_WAIT_S / 2, f"refused after {took:.1f} s"
    assert not out.exists()


def test_dump_refuses_alike(fakes: dict[str, Running]) -> None:
    line = one_line(flamekit("dump", "-p", str(fakes["3.5"].pid)))
    assert f"CPython 3.5.10 is not supported: {SUPPORT}" in line, line


@pytest.mark.parametrize("interp", legacy(), ids=str)
def test_a_debug_build_of_a_version_before_3_8_is_refused(
    fakes: dict[str, Running], interp: Interpreter
) -> None:
    """Its objects carry _ob_next/_ob_prev in front (Py_TRACE_REFS comes with Py_DEBUG
    before 3.8): the tables' offsets, of release builds, are all 16 bytes short."""
    target = fakes["{}.{}-debug".format(*interp.version)]
    with pytest.raises(TargetError) as e:
        open_target(target.pid)
    version = Path(interp.path).resolve().parent.parent.name  # e.g. 3.7.16
    assert str(e.value) == (
        f"CPython {version}, a debug build (--with-pydebug, with Py_TRACE_REFS), is not "
        f"supported: {SUPPORT}"
    )


def test_the_cli_says_so_in_one_line(fakes: dict[str, Running]) -> None:
    line = one_line(flamekit("record", "-p", str(fakes["3.7-debug"].pid), "-d", "1"))
    assert "CPython 3.7.16, a debug build (--with-pydebug" in line and SUPPORT in line, line


def test_a_trace_refs_build_of_3_8_on_is_refused(fakes: dict[str, Running]) -> None:
    with pytest.raises(TargetError, match=r"CPython 3\.8\.18, a --with-trace-refs build, is not"):
        open_target(fakes["3.8-trace-refs"].pid)


def test_a_debug_build_of_3_8_on_is_read(fakes: dict[str, Running]) -> None:
    """From 3.8 a debug build has the release layout (gen_layouts.py measures it: the
    3.8-3.13 entries list "debug"), so it is recorded as it is."""
    target = open_target(fakes["3.8-debug"].pid)
    try:
        assert target.flavour == "debug" and target.version == (3, 8, 18)
    finally:
        target.close()


def test_a_second_libpython_not_in_use_is_passed_over(fakes: dict[str, Running]) -> None:
    """2.7's extension modules link libpython2.7 by its real name: the 2.6 fake, which
    imported time, maps the original copy too, unused. Its PyType_Type's type is bound
    to the copy in use, so the object-header check passes over it, and the refusal names
    the version of the copy in use."""
    maps = fakes["2.6"].libpythons()
    assert any(p.endswith("libpython2.7.so.1.0") for p in maps), maps
    assert any(p.endswith("libpython2.6.so.1.0") for p in maps), maps
    with pytest.raises(TargetError, match=r"^CPython 2\.6\.9 is not supported"):
        open_target(fakes["2.6"].pid)


def test_objects_laid_out_otherwise_are_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The object-header check, whatever the symbols say: a real 3.7 read with the
    offsets a --with-pydebug 3.7 has (every object 16 bytes longer in front) is refused;
    read with its own, it opens."""
    proc = subprocess.Popen([PY37.path, "-c", "import os; os.read(0, 1)"], stdin=subprocess.PIPE)
    try:
        ok = wait_open(proc.pid)
        ok.close()
        shifted = {
            k: v + 16 if k in ("ob_type", "ob_size") else v for k, v in TABLES["3.7"].items()
        }
        monkeypatch.setitem(TABLES, "3.7", shifted)
        with pytest.raises(HeaderMismatch, match=r"CPython 3\.7\.16 are not laid out as .*PyType"):
            open_target(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def wait_open(pid: int):
    """open_target once the interpreter has started (its state is set up)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return open_target(pid)
        except TargetError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- the tables and the tells, as data ------------------------------------------------


def test_tables_say_which_builds_they_hold_for() -> None:
    """Derived from pyenv's 2.7.18, 3.6.15 and 3.7.16 headers like every other entry;
    release builds only before 3.8, debug builds too from 3.8 (tools/gen_layouts.py)."""
    for key, version in (("2.7", "2.7.18"), ("3.6", "3.6.15"), ("3.7", "3.7.16")):
        assert TABLES[key]["source"] == f"CPython {version} headers"
        assert TABLES[key]["builds"] == ["release"]
    for key in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13"):
        assert TABLES[key]["builds"] == ["release", "debug"], key


def test_the_refusal_names_what_is_supported() -> None:
    """From the tables and the debug-offset field lists: no version list of its own."""
    assert layoutmod.supported_minors() == [(2, 7)] + [(3, m) for m in range(6, 15)]
    assert support_statement() == SUPPORT.removeprefix("flamekit records ")
    check_supported((2, 7, 18), "release")
    check_supported((3, 14, 0), "debug")
    for version, flavour, says in [
        ((3, 5, 10), "release", "CPython 3.5.10 is not supported"),
        ((3, 3, 0), "release", "CPython 3.3 is not supported"),
        ((3, 15, 0), "release", "CPython 3.15 is newer than this flamekit supports"),
        ((3, 6, 15), "debug", "CPython 3.6.15, a debug build (--with-pydebug), is not"),
        ((3, 14, 0), "trace-refs", "CPython 3.14, a --with-trace-refs build, is not"),
    ]:
        with pytest.raises(TargetError) as e:
            check_supported(version, flavour)
        assert str(e.value).startswith(says) and str(e.value).endswith(SUPPORT), e.value


def test_flavour_tells() -> None:
    def exporting(*names: str):
        return lambda name: 0x1000 if name in names else None

    assert build_flavour(exporting("Py_Initialize")) == "release"
    assert build_flavour(exporting("_Py_NegativeRefcount")) == "debug"
    assert build_flavour(exporting("_Py_PrintReferences")) == "trace-refs"
    both = exporting("_Py_NegativeRefcount", "_Py_PrintReferences")
    assert build_flavour(both) == "debug+trace-refs"
    assert py2_unicode_size(exporting("PyUnicodeUCS2_FromString")) == 2
    assert py2_unicode_size(exporting("PyUnicodeUCS4_FromString")) == 4
    assert py2_unicode_size(exporting()) is None


def test_a_ucs2_27_reads_unicode_two_bytes_a_character() -> None:
    """2.7 --enable-unicode=ucs2 (pyenv's is ucs4): the object reader's one offset that
    option moves, the width of a character, follows the target's build."""
    from flamekit.record.objects.offsets import offsets_for

    proc = subprocess.Popen([PY27.path, "-c", "import os; os.read(0, 1)"], stdin=subprocess.PIPE)
    try:
        target = wait_open(proc.pid)
        try:
            assert target.py2_unicode_size == 4
            assert offsets_for(target).py2_unicode_char_size == 4
            ucs2 = replace(target, py2_unicode_size=2)
            assert offsets_for(ucs2).py2_unicode_char_size == 2
        finally:
            target.close()
    finally:
        proc.kill()
        proc.wait()

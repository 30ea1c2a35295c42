"""Collapsed stacks: the line grammar for hostile names, the counts, and the real reader.

The real reader is flamegraph.pl, installed by tests/readers/install.sh (from Debian's
libdevel-nytprof-perl, which bundles it). flamegraph.pl exits 0 even when it ignores
lines, so the tests read its stderr too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.convert.collapsed import escape_frame, unescape_frame
from flamekit.trace import TraceWriter, load
from flamekit.trace import records as R
from flamekit.trace.synthetic import write_synthetic

#: flamegraph.pl's own line pattern: stack, whitespace, count at the end.
FLAMEGRAPH_LINE = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$", re.S)
LINE = re.compile(r"^[^;\n]+(;[^;\n]+)* [1-9][0-9]*$")


def collapsed(sel, lines: bool = True) -> str:
    data = b"".join(get_format("collapsed").convert(sel, ConvertOptions(lines=lines)))
    return data.decode("utf-8")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans())
def test_line_grammar_holds_and_counts_add_up(spec: Spec, threads: bool, idle: bool, lines: bool):
    prof = build_profile(load_spec(spec), fake_lines)
    sel = select(prof, FilterOptions(threads=threads, idle=idle))
    text = collapsed(sel, lines)
    if not len(sel):
        assert text == ""
        return
    assert text.endswith("\n")
    rows = text[:-1].split("\n")
    # no other line break a reader might honour (CR, NEL, U+2028, ...)
    assert text.splitlines() == rows
    total = 0
    seen = set()
    counts = sel.stack_counts(lines=lines)
    want = {tuple(escape_frame(prof.label(f)) for f in stack): n for stack, n in counts.items()}
    for row in rows:
        assert LINE.match(row), row
        stack, count = row.rsplit(" ", 1)
        # flamegraph.pl reads the same split, and never a second (differential) count
        m = FLAMEGRAPH_LINE.match(row)
        assert m and m.group(1) == stack and m.group(2) == count
        assert not FLAMEGRAPH_LINE.match(stack), row
        frames = tuple(stack.split(";"))
        assert frames not in seen  # one line per distinct stack
        seen.add(frames)
        assert want[frames] == int(count)
        total += int(count)
    assert total == len(sel)
    assert rows == sorted(rows)


@given(st.sampled_from(HOSTILE) | st.text())
def test_escaping_is_reversible_and_safe(name: str):
    esc = escape_frame(name)
    assert ";" not in esc and "\n" not in esc and "\r" not in esc
    assert len(esc.splitlines()) <= 1
    assert unescape_frame(esc) == name
    esc.encode("utf-8")  # lone surrogates are escaped too


def test_hostile_names_round_trip_through_the_labels(tmp_path: Path):
    p = hostile_trace(tmp_path)
    prof = build_profile(load(p), fake_lines)
    text = collapsed(select(prof, FilterOptions()))
    frames = {
        unescape_frame(f) for row in text.splitlines() for f in row.rsplit(" ", 1)[0].split(";")
    }
    for i, name in enumerate(HOSTILE):
        assert f"{name} (file {i}.py:{10 + i})" in frames


def test_no_lines_merges_a_functions_lines(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=3000, stacks=80, threads=2)
    prof = build_profile(load(p), fake_lines)
    sel = select(prof, FilterOptions())
    with_lines = collapsed(sel)
    without = collapsed(sel, lines=False)
    assert any(re.search(r":\d+\) \d+$", row) for row in with_lines.splitlines())
    for row in without.splitlines():
        for frame in row.rsplit(" ", 1)[0].split(";"):
            assert re.fullmatch(r"\S+ \(app/[a-z0-9_]+\.py\)", frame), frame
    assert len(without.splitlines()) <= len(with_lines.splitlines())
    assert sum(int(r.rsplit(" ", 1)[1]) for r in without.splitlines()) == len(sel)


def test_collapsed_is_registered_first():
    fmt = formats()["collapsed"]
    assert list(formats())[0] == "collapsed"
    assert fmt.extension == ".collapsed" and fmt.description


# -- the real reader -------------------------------------------------------------------


def hostile_trace(tmp_path: Path) -> Path:
    """One stack per hostile name, under threads with hostile names too."""
    p = tmp_path / "hostile.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 100.0, 1))
        for i, name in enumerate(HOSTILE):
            w.write(R.Code(i + 1, 1, i, name, None, f"file {i}.py", 10 + i, b"", 0))
        w.write(R.Code(100, 1, 100, "main", "main", "app.py", 1, b"", 0))
        w.write(R.Thread(0, 1, 41, None, "Main;Thread <x> & 'y'", 0))
        w.write(R.Thread(1, 1, 42, None, "new\nline", 0))
        t = 0
        for i in range(len(HOSTILE)):
            sid = w.stack_id(((i + 1, 0), (100, 0)))
            for k in range(i + 1):
                t += 1000
                w.sample(t, k % 2, sid, gil=True)
        w.sample(t + 1000, 0, 0, gil=True)  # a thread with no Python frames
        w.close("duration")
    return p


def find_flamegraph() -> str | None:
    env = os.environ.get("FLAMEGRAPH_PL")
    if env:
        return env
    for cand in (shutil.which("flamegraph.pl"), "/usr/share/perl5/Devel/NYTProf/flamegraph.pl"):
        if cand and os.path.isfile(cand):
            return cand
    return None


@pytest.fixture(scope="module")
def flamegraph_pl() -> str:
    path = find_flamegraph()
    if path is None or shutil.which("perl") is None:
        msg = "flamegraph.pl not installed (run tests/readers/install.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_flamegraph(flamegraph_pl: str, folded: Path) -> tuple[ET.Element, str]:
    r = subprocess.run(
        ["perl", flamegraph_pl, "--minwidth", "0", str(folded)],
        capture_output=True,
        timeout=120,
    )
    stderr = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, stderr
    assert "Ignored" not in stderr and "ERROR" not in stderr, stderr
    # flamegraph.pl is byte-oriented: the visible text of a narrow frame is cut by bytes
    # and can end inside a UTF-8 sequence. The titles (hover text) are whole; decode
    # leniently so the cut display text does not hide them.
    return ET.fromstring(r.stdout.decode("utf-8", "replace")), stderr


def svg_titles(svg: ET.Element) -> dict[str, int]:
    """frame name -> samples, from the title (hover text) of each drawn frame."""
    out: dict[str, int] = {}
    for el in svg.iter():
        if el.tag.endswith("title") and el.text:
            m = re.fullmatch(r"(.*) \(([\d,]+) samples, [\d.]+%\)", el.text, re.S)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2).replace(",", ""))
    return out


@pytest.mark.parametrize("threads", [False, True])
def test_flamegraph_pl_reads_every_line_of_hostile_output(
    tmp_path: Path, flamegraph_pl: str, threads: bool
):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=threads))
    folded = tmp_path / "out.collapsed"
    folded.write_text(collapsed(sel), encoding="utf-8")
    svg, stderr = run_flamegraph(flamegraph_pl, folded)
    titles = svg_titles(svg)
    assert titles.pop("all") == len(sel) == sum(range(1, len(HOSTILE) + 1)) + 1
    # flamegraph.pl turns <> into () in names; otherwise each frame is as we escaped it
    for i, name in enumerate(HOSTILE):
        label = escape_frame(f"{name} (file {i}.py:{10 + i})").translate(str.maketrans("<>", "()"))
        assert titles.get(label) == i + 1, (label, sorted(titles))
    assert titles["main (app.py:1)"] == len(sel) - 1  # all but the empty-stack sample
    if threads:
        assert sum(v for k, v in titles.items() if k.startswith("thread ")) == len(sel)


def test_flamegraph_pl_reads_a_synthetic_profile(tmp_path: Path, flamegraph_pl: str):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=20000, stacks=400, threads=4)
    prof = build_profile(load(p))
    sel = select(prof, FilterOptions(threads=True))
    folded = tmp_path / "s.collapsed"
    folded.write_text(collapsed(sel), encoding="utf-8")
    svg, _ = run_flamegraph(flamegraph_pl, folded)
    assert svg_titles(svg)["all"] == len(sel)

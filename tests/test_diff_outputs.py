"""The diff's outputs: the table, JSON, and difffolded read by the real flamegraph.pl.

flamegraph.pl (installed by tests/readers/install.sh) exits 0 even when it ignores lines,
so the tests read its stderr for "Ignored".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_convert_collapsed import find_flamegraph, hostile_trace
from test_diff import MODE_A, MODE_B, diff_of, fr, write_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.collapsed import escape_frame, unescape_frame
from flamekit.diffing.model import Diff, build_diff
from flamekit.diffing.outputs import (
    render_difffolded,
    render_json,
    render_table,
    scale_counts,
)
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

#: flamegraph.pl's pattern for the count at the end of a line (applied twice for diffs).
COUNT_AT_END = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$", re.S)
DIFF_LINE = re.compile(r"^[^;\n]+(;[^;\n]+)* (0|[1-9][0-9]*) (0|[1-9][0-9]*)$")


def folded(d: Diff, normalize: bool = True) -> str:
    return b"".join(render_difffolded(d, normalize)).decode("utf-8")


def parse_folded(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    out = {}
    for row in text.splitlines():
        assert DIFF_LINE.match(row), row
        stack, ca, cb = row.rsplit(" ", 2)
        # flamegraph.pl reads exactly this split: b's count, a's count, and the stack,
        # and never a third number off the end of the stack
        m = COUNT_AT_END.match(row)
        assert m and m.group(2) == cb
        m2 = COUNT_AT_END.match(m.group(1))
        assert m2 and m2.group(1) == stack and m2.group(2) == ca
        assert not COUNT_AT_END.match(stack), row
        key = tuple(stack.split(";"))
        assert key not in out
        out[key] = (int(ca), int(cb))
    return out


# -- difffolded ----------------------------------------------------------------------------


def test_difffolded_lines_counts_and_normalisation(tmp_path: Path):
    d = diff_of(write_trace(tmp_path / "a.fkt", MODE_A), write_trace(tmp_path / "b.fkt", MODE_B))
    raw = parse_folded(folded(d, normalize=False))
    stack = ("<module> (app.py)", "run (app.py)")
    assert raw == {
        stack + ("checksum (app.py)",): (150, 700),
        stack + ("parse (app.py)",): (700, 600),
        stack + ("render (app.py)",): (150, 700),
    }
    scaled = parse_folded(folded(d))
    assert scaled[stack + ("parse (app.py)",)] == (1400, 600)  # a on b's scale: 70% of 2000
    assert sum(ca for ca, _ in scaled.values()) == 2000
    text = folded(d)
    assert text.endswith("\n") and "\r" not in text
    assert text.splitlines() == sorted(text.splitlines())


def test_difffolded_is_the_same_on_every_run(tmp_path: Path):
    """Scaling a's counts to b's total rounds, and ties in the rounding go to the earlier
    stack: that order must not follow Python's per-run string hashing. 20,000 samples over
    300 stacks against 2,000: many equal remainders."""
    a, b = tmp_path / "a.fkt", tmp_path / "b.fkt"
    for path, n, stacks in ((a, 20_000, 300), (b, 2_000, 40)):
        with open(path, "wb") as f:
            write_synthetic(f, samples=n, stacks=stacks, threads=3)
    outs = set()
    for seed in ("0", "1", "2", "3"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "flamekit",
                "diff",
                str(a),
                str(b),
                "--to",
                "difffolded",
                "-o",
                "-",
            ],
            capture_output=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1


@pytest.mark.parametrize(
    "counts, target",
    [([1, 1, 1], 2), ([5], 3), ([0, 3, 0], 6), ([2, 2], 4), ([7, 0, 3, 1], 1000), ([1] * 9, 5)],
)
def test_scaled_counts_keep_the_total(counts: list[int], target: int):
    out = scale_counts(counts, target)
    assert sum(out) == target
    assert all(abs(o - c * target / sum(counts)) < 1 for o, c in zip(out, counts))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), random_traces(), st.booleans(), st.booleans())
def test_difffolded_grammar_holds_for_hostile_names(sa: Spec, sb: Spec, threads: bool, lines: bool):
    opts = FilterOptions(threads=threads, idle=True)
    a = select(build_profile(load_spec(sa), fake_lines), opts)
    b = select(build_profile(load_spec(sb), fake_lines), opts)
    if not len(a) or not len(b):
        return
    d = build_diff(a, b, lines=lines)
    text = folded(d, normalize=False)
    assert text.splitlines() == text[:-1].split("\n")  # no other line break a reader honours
    got = parse_folded(text)
    assert sum(ca for ca, _ in got.values()) == len(a)
    assert sum(cb for _, cb in got.values()) == len(b)
    want = {tuple(escape_frame(d.label(k)) for k in sk): counts for sk, counts in d.stacks.items()}
    assert got == want
    same = parse_folded(folded(build_diff(b, b, lines=lines)))
    assert all(ca == cb for ca, cb in same.values())


@pytest.fixture(scope="module")
def flamegraph() -> str:
    path = find_flamegraph()
    if path is None or shutil.which("perl") is None:
        msg = "flamegraph.pl not installed (run tests/readers/install.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_flamegraph(flamegraph_pl: str, path: Path, *opts: str) -> tuple[ET.Element, str]:
    r = subprocess.run(
        ["perl", flamegraph_pl, "--minwidth", "0", *opts, str(path)],
        capture_output=True,
        timeout=120,
    )
    stderr = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, stderr
    assert "Ignored" not in stderr and "ERROR" not in stderr, stderr
    return ET.fromstring(r.stdout.decode("utf-8", "replace")), stderr


def frames_of(svg: ET.Element) -> dict[str, tuple[int, float | None, str]]:
    """flamegraph.pl's drawn frames: name -> (samples, delta %, fill colour)."""
    out = {}
    for g in svg.iter():
        if not g.tag.endswith("g"):
            continue
        title = next((c for c in g if c.tag.endswith("title")), None)
        rect = next((c for c in g if c.tag.endswith("rect")), None)
        if title is None or rect is None or not title.text:
            continue
        m = re.fullmatch(
            r"(.*) \(([\d,]+) samples, [\d.]+%(?:; ([+-]?[\d.]+)%)?\)", title.text, re.S
        )
        assert m, title.text
        delta = float(m.group(3)) if m.group(3) is not None else None
        out[m.group(1)] = (int(m.group(2).replace(",", "")), delta, rect.get("fill", ""))
    return out


def test_flamegraph_pl_draws_the_modes_red_and_blue(tmp_path: Path, flamegraph: str):
    d = diff_of(write_trace(tmp_path / "a.fkt", MODE_A), write_trace(tmp_path / "b.fkt", MODE_B))
    path = tmp_path / "d.difffolded"
    path.write_text(folded(d), encoding="utf-8")
    svg, _ = run_flamegraph(flamegraph, path)
    drawn = frames_of(svg)
    assert drawn["all"][0] == 2000
    # flamegraph.pl turns <> into (); widths come from b, colours from b - a (scaled)
    samples, delta, fill = drawn["parse (app.py)"]
    assert samples == 600 and delta == pytest.approx(-40)
    assert re.fullmatch(r"rgb\((\d+),\1,255\)", fill), fill  # blue: shrank
    samples, delta, fill = drawn["render (app.py)"]
    assert samples == 700 and delta == pytest.approx(20)
    assert re.fullmatch(r"rgb\(255,(\d+),\1\)", fill), fill  # red: grew


def test_flamegraph_pl_reads_every_line_of_a_hostile_diff(tmp_path: Path, flamegraph: str):
    """Hostile names on both sides (one side from a second trace with other refs)."""
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    other = write_trace(
        tmp_path / "b.fkt",
        {(fr(name, f"file {i}.py", 0),): i + 2 for i, name in enumerate(HOSTILE)},
        ref_base=300,
    )
    for threads in (False, True):
        opts = FilterOptions(threads=threads)
        d = build_diff(select(prof, opts), select(build_profile(load(other), fake_lines), opts))
        path = tmp_path / "h.difffolded"
        path.write_text(folded(d, normalize=False), encoding="utf-8")
        svg, _ = run_flamegraph(flamegraph, path)
        drawn = frames_of(svg)
        assert drawn["all"][0] == d.b.selected
        names = {unescape_frame(n) for n in drawn}
        for i, name in enumerate(HOSTILE):
            # the other trace has no line table: function-level label, b's frame
            assert f"{name} (file {i}.py)".translate(str.maketrans("<>", "()")) in {
                n.translate(str.maketrans("<>", "()")) for n in names
            }


# -- the table -----------------------------------------------------------------------------


def test_table_header_names_both_sides_and_rows_line_up(tmp_path: Path):
    a = write_trace(tmp_path / "before.fkt", MODE_A)
    b = write_trace(tmp_path / "after.fkt", {**MODE_B, (fr("<module>"), fr("brand_new")): 50})
    d = diff_of(a, b)
    rows = d.rows()
    text = render_table(d, rows[:3], "self", len(rows))
    lines = text.splitlines()
    assert lines[0].startswith(f"a: {a}") and "1.00 s" in lines[0] and "1,000 samples" in lines[0]
    assert lines[1].startswith(f"b: {b}") and "2.05 s" in lines[1] and "2,050 samples" in lines[1]
    assert "Python 3.12.1" in lines[0]
    assert "Self a" in lines[3] and "ΔTotal" in lines[3]
    body = lines[4:7]
    assert body[0].split()[:3] == ["70.00%", "29.27%", "-40.73"] and body[0].endswith(
        "parse (app.py)"
    )
    assert lines[7] == f"({len(rows) - 3} more functions not shown; --top 0 shows all)"
    full = render_table(d, rows, "self", len(rows)).splitlines()
    new = next(line for line in full if line.endswith("brand_new (app.py)"))
    assert new.split()[:3] == ["-", "2.44%", "+2.44"]  # absent from a: '-'
    same = render_table(diff_of(a, a), diff_of(a, a).rows(), "self")
    assert "-0.00" not in same and "+0.00" not in same


def test_table_rows_stay_one_line_with_hostile_names(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions())
    d = build_diff(sel, sel)
    text = render_table(d, d.rows(), "self")
    assert len(text.splitlines()) == 4 + len(d.rows())
    assert text.splitlines() == text[:-1].split("\n")
    assert "new\\x0aline (file 1.py)" in text


# -- JSON --------------------------------------------------------------------------------


def test_json_holds_the_rows_with_names_exact(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions())
    other = write_trace(tmp_path / "b.fkt", {(fr("a;b", "file 0.py", 8),): 3}, ref_base=300)
    d = build_diff(sel, select(build_profile(load(other), fake_lines), FilterOptions()), lines=True)
    rows = d.rows()
    doc = json.loads(render_json(d, rows, "self").decode("utf-8"))
    assert doc["a"]["samples"] == len(load(hostile_trace(tmp_path)))
    assert doc["b"]["selected"] == 3 and doc["granularity"] == "line"
    assert doc["rows_total"] == len(rows) == len(doc["rows"])
    for r, j in zip(rows, doc["rows"]):
        assert j["label"] == r.frame.label() and j["status"] == r.status
        assert j["self_diff_pp"] == pytest.approx(r.self_diff, abs=1e-6)
        assert (j["self_samples_a"], j["total_samples_b"]) == (r.self_a, r.total_b)
    names = {j["name"] for j in doc["rows"]}
    assert set(HOSTILE) <= names
    added = [j for j in doc["rows"] if j["status"] == "added"]
    assert [(j["function"], j["file"], j["line"]) for j in added] == [("a;b", "file 0.py", 12)]

"""`diff --to svg`: well-formed, escaped, shaped like b, red/blue by change; and in chromium.

The drawing is convert's (flamekit.convert.flamegraph_svg); these tests check what the
diff puts into it: widths from b, colours from the change in total share, hover text,
and that the real browser still hovers, zooms and searches it with no script error.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import harness, png
from test_convert_collapsed import hostile_trace
from test_diff import MAIN, MODE_A, MODE_B, diff_of, fr, write_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.flamegraph_svg import visible
from flamekit.diffing.model import Diff, build_diff
from flamekit.diffing.svg import FULL_SCALE_PP, render_svg
from flamekit.trace import load

NS = "{http://www.w3.org/2000/svg}"
INNER = 1200 - 2 * 10
WHITE = "rgb(250,250,250)"
DETAIL = re.compile(
    r"(.*) \(([\d,]+) samples, ([\d.]+)% in b, ([\d.]+)% in a: ([+-]?[\d.]+) points; "
    r"self ([+-]?[\d.]+) points(; new in b)?\)",
    re.S,
)


@dataclass
class Box:
    name: str
    samples: int
    pct_b: float
    pct_a: float
    change: float
    self_change: float
    new: bool
    fill: str
    width: float
    y: float


def boxes(data: bytes) -> tuple[ET.Element, list[Box]]:
    root = ET.fromstring(data)
    out = []
    for g in root.iter(NS + "g"):
        if g.get("class") != "f":
            continue
        title, rect = g.find(NS + "title"), g.find(NS + "rect")
        assert title is not None and rect is not None
        if (title.text or "").startswith("all ("):
            assert rect.get("fill") == WHITE
            continue
        m = DETAIL.fullmatch(title.text or "")
        assert m, title.text
        out.append(
            Box(
                m.group(1),
                int(m.group(2).replace(",", "")),
                float(m.group(3)),
                float(m.group(4)),
                float(m.group(5)),
                float(m.group(6)),
                bool(m.group(7)),
                rect.get("fill", ""),
                float(rect.get("width", "nan")),
                float(rect.get("y", "nan")),
            )
        )
    return root, out


def svg_of(d: Diff) -> bytes:
    return b"".join(render_svg(d))


def rgb(fill: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill)
    assert m, fill
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def is_red(fill: str) -> bool:
    r, g, b = rgb(fill)
    return r == 255 and g == b < 255


def is_blue(fill: str) -> bool:
    r, g, b = rgb(fill)
    return b == 255 and r == g < 255


def test_modes_parse_blue_render_red_callers_white(tmp_path: Path):
    d = diff_of(write_trace(tmp_path / "a.fkt", MODE_A), write_trace(tmp_path / "b.fkt", MODE_B))
    root, got = boxes(svg_of(d))
    assert root.get("data-total") == "2000"
    by = {b.name: b for b in got}
    assert set(by) == {
        "<module> (app.py)",
        "run (app.py)",
        "parse (app.py)",
        "render (app.py)",
        "checksum (app.py)",
    }
    parse = by["parse (app.py)"]
    assert (parse.samples, parse.pct_b, parse.pct_a, parse.change) == (600, 30, 70, -40)
    assert parse.self_change == -40 and not parse.new
    assert parse.width == pytest.approx(INNER * 600 / 2000, abs=0.01)  # b's shape
    assert rgb(parse.fill) == (45, 45, 255)  # the largest change: full blue
    render = by["render (app.py)"]
    assert render.change == 20 and is_red(render.fill)
    assert rgb(render.fill)[1] > 45  # half the largest change: paler
    for name in ("<module> (app.py)", "run (app.py)"):
        assert by[name].fill == WHITE and by[name].change == 0


def test_a_trace_against_itself_is_white(tmp_path: Path):
    a = write_trace(tmp_path / "a.fkt", MODE_A)
    _, got = boxes(svg_of(diff_of(a, a)))
    assert got and all(b.fill == WHITE and b.change == 0 for b in got)


def test_small_changes_stay_pale(tmp_path: Path):
    """A 1-point change is not stretched to full colour (the scale is at least 5 points)."""
    a = write_trace(tmp_path / "a.fkt", {(MAIN, fr("f")): 50, (MAIN, fr("g")): 50})
    b = write_trace(tmp_path / "b.fkt", {(MAIN, fr("f")): 51, (MAIN, fr("g")): 49})
    by = {b.name: b for b in boxes(svg_of(diff_of(a, b)))[1]}
    r, g, _ = rgb(by["f (app.py)"].fill)
    assert r == 255 and g == round(210 * (1 - 1 / FULL_SCALE_PP)) + 45


def test_nothing_in_common_is_all_new_and_the_subtitle_says_what_is_missing(tmp_path: Path):
    a = write_trace(tmp_path / "a.fkt", {(fr("a1", "x.py"),): 5})
    b = write_trace(tmp_path / "b.fkt", {(fr("b1", "y.py"), fr("b2", "y.py")): 3})
    data = svg_of(diff_of(a, b))
    root, got = boxes(data)
    assert {b.name for b in got} == {"b1 (y.py)", "b2 (y.py)"}
    assert all(b.new and b.change == 100 and rgb(b.fill) == (255, 45, 45) for b in got)
    subtitle = root.find(f".//{NS}text[@id='subtitle']")
    assert subtitle is not None and "100.00% of a.fkt's samples" in (subtitle.text or "")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), random_traces(), st.booleans(), st.booleans())
def test_any_pair_gives_a_well_formed_graph_of_b(sa: Spec, sb: Spec, threads: bool, lines: bool):
    opts = FilterOptions(threads=threads, idle=True)
    a = select(build_profile(load_spec(sa), fake_lines), opts)
    b = select(build_profile(load_spec(sb), fake_lines), opts)
    if not len(a) or not len(b):
        return
    d = build_diff(a, b, lines=lines)
    root, got = boxes(svg_of(d))
    assert root.get("data-total") == str(len(b))
    for box in got:
        assert box.fill == WHITE or is_red(box.fill) or is_blue(box.fill)
        assert (box.change > 0) == is_red(box.fill) or round(box.change, 2) == 0
        assert box.width == pytest.approx(INNER * box.samples / len(b), abs=0.01)
    # the first level (leaves of depth 1, or thread roots) holds b's samples exactly
    bottom = max(box.y for box in got)
    assert sum(box.samples for box in got if box.y == bottom) == len(b)
    names = {box.name for box in got}
    for sk, (_, cb) in d.stacks.items():
        if cb:
            assert visible(d.label(sk[-1])) in names


def test_hostile_names_are_escaped_and_intact(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    data = svg_of(build_diff(sel, sel, lines=True))
    assert b"<script>" in data and data.count(b"<script>") == 1
    _, got = boxes(data)
    names = {b.name for b in got}
    for i, name in enumerate(HOSTILE):
        assert visible(f"{name} (file {i}.py:{10 + i})") in names
    assert "thread Main;Thread <x> & 'y'" in names


# -- the command and the real browser --------------------------------------------------------


def test_the_command_writes_b_dot_diff_svg(tmp_path: Path):
    a = write_trace(tmp_path / "a.fkt", MODE_A)
    b = write_trace(tmp_path / "b.fkt", MODE_B)
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "diff", str(a), str(b), "--to", "svg"],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stderr
    data = (tmp_path / "b.diff.svg").read_bytes()
    assert data == svg_of(diff_of(a, b))
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "diff", str(a), str(b), "--to", "svg", "-o", "-"],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout == data


FRAMES_JS = """Array.from(document.querySelectorAll('g.f')).map(g => {
  const r = g.querySelector('rect');
  return {title: g.querySelector('title').textContent, cls: g.getAttribute('class'),
          x: +r.getAttribute('x'), w: +r.getAttribute('width'),
          shown: getComputedStyle(g).display !== 'none'};
})"""


def test_chromium_draws_zooms_and_searches_it(tmp_path: Path):
    d = diff_of(write_trace(tmp_path / "a.fkt", MODE_A), write_trace(tmp_path / "b.fkt", MODE_B))
    path = tmp_path / "d.svg"
    path.write_bytes(svg_of(d))
    b = harness.browser()
    b.call("open", url=path.as_uri(), dialog="^parse")
    shot = tmp_path / "shot.png"
    b.call("screenshot", path=str(shot))
    colours = [tuple(c) for c in png.colours(shot.read_bytes())]
    assert any(c == (45, 45, 255) for c in colours), "no full-blue pixels"
    assert any(c[0] == 255 and c[1] == c[2] and 45 <= c[1] < 200 for c in colours), "no red"
    frames = b.call("eval", expr=FRAMES_JS)
    idx = next(i for i, f in enumerate(frames) if f["title"].startswith("render (app.py) ("))
    b.call("click", selector=f"g.f >> nth={idx}")
    zoomed = b.call("eval", expr=FRAMES_JS)[idx]
    assert zoomed["x"] == pytest.approx(10) and zoomed["w"] == pytest.approx(INNER)
    assert b.call("eval", expr="document.documentElement.getAttribute('data-zoomed')") == (
        "render (app.py)"
    )
    b.call("click", selector="#unzoom")
    b.call("click", selector="#search")
    shown = b.call("eval", expr="document.getElementById('matched').textContent")
    assert shown == "Matched: 30.00%"  # parse's share of b
    log = b.call("log")
    assert log["pageErrors"] == [] and log["console"] == []
    assert [x["type"] for x in log["dialogs"]] == ["prompt"]


def test_chromium_runs_a_hostile_diff_without_injection(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    other = write_trace(
        tmp_path / "b.fkt",
        {(fr(name, f"file {i}.py", 0),): i + 2 for i, name in enumerate(HOSTILE)},
        ref_base=300,
    )
    d = build_diff(sel, select(build_profile(load(other), fake_lines), FilterOptions(threads=True)))
    path = tmp_path / "h.svg"
    path.write_bytes(b"".join(render_svg(d, title="<script>alert(1)</script>")))
    b = harness.browser()
    b.call("open", url=path.as_uri(), dialog="<script>")
    assert b.call("eval", expr="document.querySelectorAll('script').length") == 1
    titles = [f["title"] for f in b.call("eval", expr=FRAMES_JS)]
    assert any(t.startswith("a&b<c> (file 7.py) (") for t in titles)
    b.call("click", selector="#search")
    b.call("click", selector="g.f >> nth=1")
    log = b.call("log")
    assert log["pageErrors"] == [] and log["console"] == []
    assert [x["type"] for x in log["dialogs"]] == ["prompt"]

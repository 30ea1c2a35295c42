"""SVG flame graph: well-formed, escaped, proportional, and interactive in a real browser.

The real reader is Debian's headless chromium, driven through playwright-core
(tests/readers/install_formats.sh): the graph must render, zoom on click and highlight
on search, with no script error, whatever the names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import decode, harness, png
from test_convert_collapsed import hostile_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, names, random_traces

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.convert.flamegraph_svg import (
    FlameNode,
    diff_colour,
    fit,
    hot_colour,
    render,
    visible,
    xml_text,
)
from flamekit.convert.svg import build_tree
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

SVG = decode.SVG_NS
ALLOWED_TAGS = {SVG + t for t in ("svg", "style", "script", "rect", "text", "g", "title")}
INNER = 1200 - 2 * 10


def svg_bytes(sel, lines: bool = True, title: str = "") -> bytes:
    return b"".join(get_format("svg").convert(sel, ConvertOptions(lines=lines, title=title)))


def check_svg(data: bytes, sel, lines: bool) -> list[decode.SvgFrame]:
    """Well-formed, nothing but our elements, counts and widths as the selection says."""
    root, frames = decode.svg_frames(data)
    assert root.tag == SVG + "svg"
    tags = {el.tag for el in root.iter()}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert len(root.findall(SVG + "script")) == 1
    for el in root.iter():
        assert not any(a.lower().startswith("on") for a in el.attrib), el.attrib
        assert not any("href" in a for a in el.attrib)
    total = len(sel)
    assert root.get("data-total") == str(total)
    (base,) = [f for f in frames if f.name == "all"]
    assert base.count == total and base.offset == 0 and base.value == total
    # every frame: its count is its value, its width proportional to it
    for f in frames:
        assert f.count == f.value
        assert f.width == pytest.approx(INNER * f.value / total, abs=0.006)
        assert f.x == pytest.approx(10 + INNER * f.offset / total, abs=0.006)
        assert f.text == "" or f.text == f.name or (f.text.endswith("..") and len(f.text) >= 3)
    # the drawn tree is the selection's stacks (nothing pruned at these sizes)
    prof = sel.profile
    want: dict[tuple[str, ...], int] = {}
    for stack, n in sel.stack_counts(lines=lines).items():
        for k in range(1, len(stack) + 1):
            key = tuple(visible(prof.label(f)) for f in stack[:k])
            want[key] = want.get(key, 0) + n
    got: dict[tuple[str, ...], int] = {}
    by_y: dict[float, list[decode.SvgFrame]] = {}
    for f in frames:
        by_y.setdefault(f.y, []).append(f)
    ys = sorted(by_y, reverse=True)  # root row first

    def walk(f: decode.SvgFrame, path: tuple[str, ...], level: int) -> None:
        if level >= len(ys):
            return
        kids = [
            c
            for c in by_y.get(ys[level], [])
            if c.offset >= f.offset and c.offset + c.value <= f.offset + f.value
        ]
        assert sum(c.value for c in kids) <= f.value
        for c in kids:
            key = path + (c.name,)
            got[key] = got.get(key, 0) + c.count
            walk(c, key, level + 1)

    walk(base, (), 1)
    assert got == want
    return frames


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans())
def test_any_trace_gives_a_well_formed_proportional_graph(
    spec: Spec, threads: bool, idle: bool, lines: bool
):
    prof = build_profile(load_spec(spec), fake_lines)
    sel = select(prof, FilterOptions(threads=threads, idle=idle))
    if not len(sel):
        return
    check_svg(svg_bytes(sel, lines), sel, lines)


@given(names | st.text())
def test_escaping_keeps_every_name_inert_and_visible(name: str):
    esc = xml_text(name)
    assert not set(esc) & set("<>\"'")
    assert "&" not in esc.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").replace(
        "&quot;", ""
    ).replace("&#39;", "")
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", esc)
    esc.encode("utf-8")
    # a node with that name renders to a document that parses, with the name intact
    doc = "".join(render(FlameNode("all", 3, children=[FlameNode(name, 2)]), title=name))
    root, frames = decode.svg_frames(doc.encode("utf-8"))
    assert [f.name for f in frames] == ["all", visible(name)]
    assert root.find(SVG + "text").text == (visible(name) or None)


def test_hostile_names_cannot_inject_markup(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    data = svg_bytes(sel, title="<script>alert(1)</script>")
    frames = check_svg(data, sel, True)
    assert data.count(b"<script") == 1 and b"<script>alert" not in data
    shown = {f.name for f in frames}
    for i, name in enumerate(HOSTILE):
        assert visible(f"{name} (file {i}.py:{10 + i})") in shown
    assert "thread new\\x0aline (42)" in shown


def test_wide_profiles_prune_only_frames_too_narrow_to_see(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=40000, stacks=2000, threads=2)
    sel = select(build_profile(load(p)), FilterOptions())
    _, frames = decode.svg_frames(svg_bytes(sel))
    assert min(f.width for f in frames) >= 0.1 - 0.005
    assert frames[0].count == len(sel)  # the root counts everything, drawn or not


def test_fit_and_colours():
    assert fit("abcdef", 6 + 7.2 * 6) == "abcdef"
    assert fit("abcdefgh", 6 + 7.2 * 6) == "abcd.."
    assert fit("abcdef", 10) == ""
    assert hot_colour(FlameNode("f", 1, key="f")) == hot_colour(FlameNode("g", 9, key="f"))
    assert diff_colour(FlameNode("f", 1, key=1.0)).startswith("rgb(255,")
    assert diff_colour(FlameNode("f", 1, key=-1.0)).endswith(",255)")


def test_registered():
    assert formats()["svg"].extension == ".svg"


def test_build_tree_orders_children_by_name(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=2000, stacks=50, threads=2)
    prof = build_profile(load(p))
    root = build_tree(prof, select(prof, FilterOptions()).stack_counts())
    work = [root]
    while work:
        n = work.pop()
        assert [c.name for c in n.children] == sorted(c.name for c in n.children)
        assert sum(c.value for c in n.children) <= n.value
        work.extend(n.children)


# -- the real browser -------------------------------------------------------------------


def open_svg(path: Path, answer: str | None = None) -> harness.Browser:
    b = harness.browser()
    b.call("open", url=path.as_uri(), dialog=answer)
    return b


FRAMES_JS = """Array.from(document.querySelectorAll('g.f')).map(g => {
  const r = g.querySelector('rect');
  return {title: g.querySelector('title').textContent, cls: g.getAttribute('class'),
          x: +r.getAttribute('x'), w: +r.getAttribute('width'), y: +r.getAttribute('y'),
          text: g.querySelector('text').textContent,
          shown: getComputedStyle(g).display !== 'none'};
})"""


@pytest.fixture
def synthetic_svg(tmp_path: Path) -> tuple[Path, object]:
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=5000, stacks=60, threads=3)
    sel = select(build_profile(load(p)), FilterOptions(threads=True))
    out = tmp_path / "s.svg"
    out.write_bytes(svg_bytes(sel))
    return out, sel


def test_browser_renders_a_non_blank_graph(synthetic_svg, tmp_path: Path):
    path, _ = synthetic_svg
    b = open_svg(path)
    shot = tmp_path / "shot.png"
    b.call("screenshot", path=str(shot))
    counts = png.colours(shot.read_bytes())
    # background plus many frame colours; a blank or failed page has a handful
    assert len(counts) > 20
    assert b.call("log") == {"console": [], "pageErrors": [], "dialogs": []}


def test_browser_click_zooms_and_reset_unzooms(synthetic_svg):
    path, sel = synthetic_svg
    b = open_svg(path)
    before = b.call("eval", expr=FRAMES_JS)
    target = next(f for f in before if f["title"].startswith("thread worker-1 "))
    idx = before.index(target)
    b.call("click", selector=f"g.f >> nth={idx}")
    after = b.call("eval", expr=FRAMES_JS)
    zoomed = after[idx]
    assert zoomed["x"] == pytest.approx(10) and zoomed["w"] == pytest.approx(INNER)
    root = after[0]
    assert "parent" in root["cls"] and root["shown"]
    for f0, f1 in zip(before, after):
        inside = (
            f0["x"] >= target["x"] - 0.01 and f0["x"] + f0["w"] <= target["x"] + target["w"] + 0.01
        )
        if f0["y"] < target["y"] and not inside:
            assert not f1["shown"]  # other threads' frames are hidden
        if f0["y"] <= target["y"] and inside and f0["w"] > 0.5:
            assert f1["shown"]
            # scaled by the zoom factor
            assert f1["w"] == pytest.approx(f0["w"] * INNER / target["w"], rel=0.01, abs=0.05)
    assert b.call("eval", expr="document.documentElement.getAttribute('data-zoomed')").startswith(
        "thread worker-1 "
    )
    b.call("click", selector="#unzoom")
    reset = b.call("eval", expr=FRAMES_JS)
    assert [(f["x"], f["w"], f["shown"]) for f in reset] == [(f["x"], f["w"], True) for f in before]
    assert b.call("log")["pageErrors"] == []


def test_browser_search_highlights_matches(synthetic_svg):
    path, sel = synthetic_svg
    b = open_svg(path, answer="^parse")
    b.call("click", selector="#search")
    frames = b.call("eval", expr=FRAMES_JS)
    matched = [f for f in frames if "match" in f["cls"]]
    assert matched and all(f["title"].startswith("parse") for f in matched)
    assert len(matched) == sum(1 for f in frames if f["title"].startswith("parse"))
    # the share shown is the share of samples with parse anywhere on the stack
    prof = sel.profile
    want = sum(
        n
        for stack, n in sel.stack_counts().items()
        if any(prof.frames[f].qualname.startswith("parse") for f in stack)
    )
    shown = b.call("eval", expr="document.getElementById('matched').textContent")
    assert shown == f"Matched: {100 * want / len(sel):.2f}%"
    log = b.call("log")
    assert log["dialogs"] and log["dialogs"][0]["type"] == "prompt"


def test_browser_runs_hostile_graph_without_injection(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    path = tmp_path / "h.svg"
    path.write_bytes(svg_bytes(sel, title="<script>alert(1)</script>"))
    b = open_svg(path, answer="<script>")
    assert b.call("eval", expr="document.querySelectorAll('script').length") == 1
    titles = [f["title"] for f in b.call("eval", expr=FRAMES_JS)]
    assert any(t.startswith("a&b<c> (file 7.py:17)") for t in titles)
    b.call("click", selector="#search")
    assert b.call("eval", expr="document.getElementById('matched').textContent") == "No match"
    b.call("click", selector="g.f >> nth=1")
    log = b.call("log")
    assert log["pageErrors"] == [] and log["console"] == []
    assert [d["type"] for d in log["dialogs"]] == ["prompt"]  # no alert() ran

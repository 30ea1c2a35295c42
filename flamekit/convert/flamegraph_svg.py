"""Drawing a flame graph as one self-contained, interactive SVG document.

The drawing knows nothing about traces: it takes a tree of :class:`FlameNode` (a name,
a value that sets the width, a colour key, optional hover detail, children) and a
colouring function. ``convert --to svg`` builds the tree from a selection's stack counts
and colours by function (:func:`hot_colour`); ``diff --to svg`` can build the same tree
from the *after* profile with each node's change as its colour key and colour it with
:func:`diff_colour` (red grew, blue shrank), with the before/after counts as detail.

The document:

* root at the bottom, children above their parent, siblings in name order, widths
  proportional to values; frames narrower than ``min_width_px`` (and so all of their
  descendants) are not drawn, as flamegraph.pl does, to keep huge profiles loadable:
  their values still count in their parent's width;
* each frame is ``<g class="f"><title>NAME (DETAIL)</title><rect/><text/></g>``: the
  title is the native hover text, the text the name cut to fit (``..`` marks a cut);
* inline CSS and JavaScript only (no external reference of any kind): hovering shows the
  frame's title in the details line, clicking a frame zooms to it (its ancestors stay,
  dimmed, at full width; click the root or "Reset Zoom" to return), "Search" (or Ctrl-F)
  asks for a regular expression (a plain substring if it is not one), highlights
  matching frames and shows the share of the root they cover; Escape clears it;
* every name is escaped for XML: ``& < > " '`` as entities, and characters XML 1.0
  cannot hold or that would be invisible (control characters, lone surrogates,
  U+FFFE/U+FFFF, line and paragraph separators) as visible ``\\xNN``/``\\uNNNN`` text;
  the script only ever reads names through ``textContent`` and writes them the same
  way, so no name can become markup or code.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from flamekit.analysis.escape import escaper

FONT_SIZE = 12
#: The drawing's width and its narrowest frame, in pixels (narrower ones are not drawn).
WIDTH = 1200
MIN_WIDTH_PX = 0.1
#: Average advance of a monospace glyph, in em (DejaVu Sans Mono, Liberation Mono: 0.60).
CHAR_EM = 0.6
FRAME_HEIGHT = 16
PAD = 10


class FlameNode:
    """One frame of the tree to draw.

    ``value`` is the node's total (itself plus its descendants: the width); a child's
    value never exceeds its parent's, and the children's values add up to at most the
    parent's (the rest is the parent's own, "self", share). ``key`` is what the colouring
    function looks at (a function's identity; a number for a diff). ``kind`` lets the
    default colouring tell synthetic frames apart. ``detail`` replaces the default hover
    detail ``N samples, P%``. Slotted: a graph holds one per frame it draws.
    """

    __slots__ = ("name", "value", "key", "kind", "detail", "children")

    def __init__(
        self,
        name: str,
        value: int,
        key: object = None,
        kind: str = "python",
        detail: str = "",
        children: list[FlameNode] | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.key = key
        self.kind = kind
        self.detail = detail
        self.children: list[FlameNode] = [] if children is None else children

    def __repr__(self) -> str:
        return f"FlameNode({self.name!r}, {self.value}, children={len(self.children)})"


def order_by_name(root: FlameNode) -> None:
    """Every node's children in name order, the flame graph convention (stable: equal
    names keep the order they were added in), so a picture depends only on its counts."""
    work = [root]
    while work:
        n = work.pop()
        n.children.sort(key=lambda c: c.name)
        work.extend(n.children)


Colouring = Callable[[FlameNode], str]

# -- colours ------------------------------------------------------------------------------


def _unit(text: str, salt: int) -> float:
    """A stable number in [0, 1) from text (crc32: the same on every run and machine)."""
    return (zlib.crc32(text.encode("utf-8", "surrogatepass"), salt) & 0xFFFF) / 0x10000


def hot_colour(node: FlameNode) -> str:
    """Warm colours by function (same key, same colour); synthetic frames in greys/blues."""
    if node.kind == "thread":
        return "rgb(150,170,210)"
    if node.kind == "process":
        return "rgb(130,190,170)"
    if node.kind in ("empty", "root"):
        return "rgb(200,200,200)"
    text = str(node.key if node.key is not None else node.name)
    r = 200 + int(55 * _unit(text, 1))
    g = 60 + int(170 * _unit(text, 2))
    b = int(60 * _unit(text, 3))
    return f"rgb({r},{g},{b})"


def diff_colour(node: FlameNode) -> str:
    """Red for growth, blue for shrinkage, white for none: ``key`` is a change in [-1, 1].

    A diff sets ``key`` to each frame's change (after - before) divided by the largest
    change in the graph; non-numeric keys are drawn as unchanged.
    """
    k = node.key if isinstance(node.key, (int, float)) else 0.0
    k = max(-1.0, min(1.0, float(k)))
    fade = int(round(210 * (1 - abs(k))))
    if k > 0:
        return f"rgb(255,{fade + 45},{fade + 45})"
    if k < 0:
        return f"rgb({fade + 45},{fade + 45},255)"
    return "rgb(250,250,250)"


# -- escaping -----------------------------------------------------------------------------

_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})

#: ``text`` with every character XML cannot hold, or would hide, as a visible escape: the
#: text escaper's characters (controls, line separators, lone surrogates) and the two
#: non-characters U+FFFE and U+FFFF, which XML 1.0 forbids.
visible: Callable[[str], str] = escaper(also="\ufffe\uffff")


def xml_text(text: str) -> str:
    """``text`` safe as XML character data or a quoted attribute value."""
    return visible(text).translate(_ENTITIES)


def fit(name: str, width_px: float, font_size: float = FONT_SIZE) -> str:
    """The part of ``name`` that fits in ``width_px`` ("" when not even 3 characters do)."""
    n = int((width_px - 6) / (font_size * CHAR_EM))
    if n < 3:
        return ""
    if len(name) <= n:
        return name
    return name[: n - 2] + ".."


# -- drawing ------------------------------------------------------------------------------


def _depth(node: FlameNode) -> int:
    best = 0
    stack = [(node, 0)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in n.children)
    return best


def render(
    root: FlameNode,
    *,
    title: str,
    subtitle: str = "",
    unit: str = "samples",
    width: int = WIDTH,
    min_width_px: float = MIN_WIDTH_PX,
    colour: Colouring = hot_colour,
) -> Iterator[str]:
    """The SVG document for ``root``, as text chunks (see the module doc).

    ``root`` is drawn too (at the bottom, full width: name it "all"). ``unit`` names the
    values in the default hover detail (``N samples, P%``).
    """
    total = max(root.value, 1)
    inner = width - 2 * PAD
    scale = inner / total
    min_value = narrowest(total, width, min_width_px)
    levels = _drawn_depth(root, min_value) + 1
    top = 3 * FONT_SIZE + 2 * PAD  # title, subtitle, buttons
    height = top + levels * FRAME_HEIGHT + 2 * FONT_SIZE + PAD  # details line below
    base_y = top + (levels - 1) * FRAME_HEIGHT  # y of the root's row

    yield (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'data-total="{root.value}" data-unit="{xml_text(unit)}">\n'
        f"<style>{_CSS}</style>\n"
        f"<script><![CDATA[{_SCRIPT}]]></script>\n"
        f'<rect class="bg" x="0" y="0" width="{width}" height="{height}"/>\n'
        f'<text id="title" x="{width / 2:.0f}" y="{PAD + FONT_SIZE + 4}">{xml_text(title)}</text>\n'
        f'<text id="subtitle" x="{width / 2:.0f}" y="{PAD + 2 * FONT_SIZE + 8}">'
        f"{xml_text(subtitle)}</text>\n"
        f'<text id="unzoom" class="button hidden" x="{PAD}" y="{PAD + FONT_SIZE + 4}">'
        "Reset Zoom</text>\n"
        f'<text id="search" class="button" x="{width - PAD}" y="{PAD + FONT_SIZE + 4}">'
        "Search</text>\n"
        f'<text id="matched" x="{width - PAD}" y="{height - PAD}"> </text>\n'
        f'<text id="details" x="{PAD}" y="{height - PAD}"> </text>\n'
        '<g id="frames">\n'
    )
    buf: list[str] = []
    # A graph repeats a few names and colours over many frames: each is escaped (and
    # each colour picked) once. A colouring depends on a node's kind and key only (its
    # name when the key is None), as hot_colour and diff_colour do.
    names: dict[str, tuple[str, str]] = {}
    unit_xml = xml_text(unit)
    colours: dict[tuple[str, object], str] = {}
    # Depth-first, children in order; x in samples from the left edge.
    stack: list[tuple[FlameNode, int, int]] = [(root, 0, 0)]
    while stack:
        node, x, depth = stack.pop()
        w = node.value * scale
        px = PAD + x * scale
        y = base_y - depth * FRAME_HEIGHT
        if node.detail:
            detail = xml_text(node.detail)
        else:  # figures and the unit: escaped once
            detail = f"{node.value:,} {unit_xml}, {100 * node.value / total:.2f}%"
        name = names.get(node.name)
        if name is None:
            name = names[node.name] = (xml_text(node.name), visible(node.name))
        label, shown = name
        fitted = fit(shown, w)
        text = xml_text(fitted) if fitted else ""
        which = (node.kind, node.name if node.key is None else node.key)
        fill = colours.get(which)
        if fill is None:
            fill = colours[which] = colour(node)
        buf.append(
            f'<g class="f" data-o="{x}" data-v="{node.value}"><title>{label} ({detail})</title>'
            f'<rect x="{px:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{fill}"/>'
            f'<text x="{px + 3:.2f}" y="{y + FRAME_HEIGHT - 4}">{text}</text></g>\n'
        )
        if len(buf) >= 512:
            yield "".join(buf)
            buf.clear()
        cx = x
        pending = []
        for child in node.children:
            if child.value > 0 and child.value >= min_value:
                pending.append((child, cx, depth + 1))
            cx += child.value
        stack.extend(reversed(pending))
    buf.append("</g>\n</svg>\n")
    yield "".join(buf)


def narrowest(total: int, width: int = WIDTH, min_width_px: float = MIN_WIDTH_PX) -> float:
    """The least value a frame needs to be drawn in a graph whose root has ``total``: a
    tree builder may leave out what is narrower (and everything under it)."""
    return min_width_px * max(total, 1) / (width - 2 * PAD) if min_width_px > 0 else 0


#: Bytes of one drawn frame besides its name (twice: the title and the text cut to fit)
#: and its numbers: the elements, attributes and colour (see :func:`render`).
FRAME_BYTES = 200


def frame_bytes(name: str, total: int) -> int:
    """At most the bytes :func:`render` writes for a frame named ``name`` in a graph of
    ``total`` (the hover detail's figures, offsets and widths included)."""
    return FRAME_BYTES + 4 * len(str(total)) + 2 * len(xml_text(name).encode("utf-8"))


def _drawn_depth(root: FlameNode, min_value: float) -> int:
    best = 0
    stack = [(root, 0)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in n.children if c.value > 0 and c.value >= min_value)
    return best


_CSS = (
    "text{font-family:'DejaVu Sans Mono','Liberation Mono',monospace;"
    f"font-size:{FONT_SIZE}px;fill:rgb(0,0,0)}}"
    "#title{text-anchor:middle;font-size:17px}#subtitle{text-anchor:middle;fill:rgb(90,90,90)}"
    "#search,#matched{text-anchor:end}.button{cursor:pointer;fill:rgb(40,60,160)}"
    ".hidden{display:none}.bg{fill:rgb(245,245,238)}"
    ".f{cursor:pointer}.f:hover rect{stroke:rgb(0,0,0);stroke-width:0.5}"
    ".f text{pointer-events:none}.f.parent{opacity:0.55}"
    ".f.match rect{fill:rgb(230,0,230)}"
)

# The script works on each frame's exact extent in values (data-o: offset from the left
# edge, data-v: value) and on its depth as drawn (the rect's y). Names are read from the title's text (the title is
# "NAME (DETAIL)" and DETAIL holds no parentheses) and written with textContent only.
_SCRIPT = r"""
(function () {
  'use strict';
  var svg = document.documentElement, frames = [], pad = 10, inner = 0, zoomed = null;
  var CHAR = 12 * 0.6;
  function text(id) { return document.getElementById(id); }
  function nameOf(f) { return f.title.replace(/ \([^()]*\)$/, ''); }
  function fitText(f, w) {
    var chars = Array.from(f.name), n = Math.floor((w - 6) / CHAR);
    f.label.textContent = n < 3 ? '' : chars.length <= n ? f.name : chars.slice(0, n - 2).join('') + '..';
  }
  function init() {
    var width = +svg.getAttribute('width');
    inner = width - 2 * pad;
    var gs = document.querySelectorAll('g.f');
    for (var i = 0; i < gs.length; i++) {
      var g = gs[i], r = g.querySelector('rect'), t = g.querySelector('title');
      var f = {g: g, rect: r, label: g.querySelector('text'), title: t.textContent,
               o: +g.getAttribute('data-o'), v: +g.getAttribute('data-v'),
               x: +r.getAttribute('x'), w: +r.getAttribute('width'), y: +r.getAttribute('y')};
      f.name = nameOf(f);
      g.flame = f;
      frames.push(f);
      g.addEventListener('click', onClick);
      g.addEventListener('mouseover', onOver);
      g.addEventListener('mouseout', onOut);
    }
    text('unzoom').addEventListener('click', unzoom);
    text('search').addEventListener('click', searchPrompt);
    window.addEventListener('keydown', function (e) {
      if ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F')) { e.preventDefault(); searchPrompt(); }
      else if (e.key === 'Escape') { clearSearch(); }
    });
  }
  function onOver(e) { text('details').textContent = this.flame.title; }
  function onOut(e) { text('details').textContent = ' '; }
  function onClick(e) {
    var f = this.flame;
    if (zoomed === f) return;
    if (f.y === maxY()) { unzoom(); return; }
    zoom(f);
  }
  function maxY() { var m = -1; frames.forEach(function (f) { if (f.y > m) m = f.y; }); return m; }
  function zoom(z) {
    zoomed = z;
    // Exact integer extents (data-o: offset, data-v: value), not the rounded pixels.
    var lo = z.o, hi = z.o + z.v, k = inner / z.v;
    frames.forEach(function (f) {
      var g = f.g;
      g.classList.remove('parent');
      if (f.y > z.y && f.o <= lo && f.o + f.v >= hi) {
        place(f, pad, inner); g.classList.add('parent'); g.classList.remove('hidden');
      } else if (f.y <= z.y && f.o >= lo && f.o + f.v <= hi) {
        place(f, pad + (f.o - lo) * k, f.v * k); g.classList.remove('hidden');
      } else {
        g.classList.add('hidden');
      }
    });
    text('unzoom').classList.remove('hidden');
    svg.setAttribute('data-zoomed', nameOf(z));
  }
  function unzoom() {
    zoomed = null;
    frames.forEach(function (f) {
      f.g.classList.remove('hidden', 'parent');
      place(f, f.x, f.w);
    });
    text('unzoom').classList.add('hidden');
    svg.removeAttribute('data-zoomed');
  }
  function place(f, x, w) {
    f.rect.setAttribute('x', x.toFixed(2));
    f.rect.setAttribute('width', w.toFixed(2));
    f.label.setAttribute('x', (x + 3).toFixed(2));
    fitText(f, w);
  }
  function matcher(term) {
    try { var re = new RegExp(term, 'i'); return function (s) { return re.test(s); }; }
    catch (err) { var t = term.toLowerCase(); return function (s) { return s.toLowerCase().indexOf(t) >= 0; }; }
  }
  function searchPrompt() {
    var term = window.prompt('Search for (regular expression):', '');
    if (term) search(term); else if (term === '') clearSearch();
  }
  function search(term) {
    var test = matcher(term), spans = [];
    frames.forEach(function (f) {
      if (test(f.name)) { f.g.classList.add('match'); spans.push([f.o, f.o + f.v]); }
      else f.g.classList.remove('match');
    });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -Infinity;
    spans.forEach(function (s) {
      if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; }
      else if (s[1] > end) { covered += s[1] - end; end = s[1]; }
    });
    var total = +svg.getAttribute('data-total');
    var pct = total > 0 ? 100 * covered / total : 0;
    text('matched').textContent = spans.length ? 'Matched: ' + pct.toFixed(2) + '%' : 'No match';
    text('search').textContent = 'Search: ' + term;
    svg.setAttribute('data-matched', pct.toFixed(2));
  }
  function clearSearch() {
    frames.forEach(function (f) { f.g.classList.remove('match'); });
    text('matched').textContent = ' ';
    text('search').textContent = 'Search';
    svg.removeAttribute('data-matched');
  }
  window.flamegraph = {search: search, clearSearch: clearSearch, unzoom: unzoom};
  if (document.readyState === 'loading') window.addEventListener('load', init); else init();
})();
"""
assert "]]>" not in _SCRIPT

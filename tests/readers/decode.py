"""Reading flamekit's outputs back into counts, independently of the writers.

Each function takes the bytes a converter produced and returns what a reader of that
format would see, as plain Python data, so that tests compare formats with each other
and with the selection. None of this imports the converters.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from readers import profile_pb

SVG_NS = "{http://www.w3.org/2000/svg}"
TITLE = re.compile(r"(.*) \(([\d,]+) samples, ([\d.]+)%\)", re.S)


@dataclass
class Counts:
    """What one output says: total samples, and samples per leaf function (self)."""

    total: int = 0
    self_by_function: Counter = field(default_factory=Counter)
    #: samples by outermost frame name (a process or thread root, or the program's own)
    roots: Counter = field(default_factory=Counter)

    def hottest(self) -> tuple[str, int]:
        """The function with the most self samples (ties: the first name in order)."""
        best = max(self.self_by_function.values())
        name = min(k for k, v in self.self_by_function.items() if v == best)
        return name, best


def collapsed(data: bytes) -> Counts:
    """Self samples by leaf function name (labels are ``qualname (file[:line])``)."""
    out = Counts()
    for row in data.decode("utf-8").splitlines():
        stack, n = row.rsplit(" ", 1)
        parts = stack.split(";")
        out.self_by_function[parts[-1].rsplit(" (", 1)[0]] += int(n)
        out.roots[parts[0]] += int(n)
        out.total += int(n)
    return out


def speedscope(data: bytes) -> tuple[Counts, Counter]:
    """Sample counts (non-empty samples) and, second, self *time* (ns) by leaf name."""
    doc = json.loads(data)
    frames = doc["shared"]["frames"]
    out = Counts()
    weight: Counter = Counter()
    for p in doc["profiles"]:
        for stack, w in zip(p["samples"], p["weights"]):
            if stack:
                name = frames[stack[-1]]["name"]
                out.self_by_function[name] += 1
                out.roots[frames[stack[0]]["name"]] += 1
                out.total += 1
                weight[name] += w
    return out, weight


def cpuprofile(data: bytes) -> Counts:
    """Hit counts by function name."""
    doc = json.loads(data)
    out = Counts()
    nodes = {node["id"]: node for node in doc["nodes"]}
    top_of: dict[int, str] = {}  # node id -> the name of its child-of-(root) ancestor
    work = [(c, nodes[c]["callFrame"]["functionName"]) for c in doc["nodes"][0]["children"]]
    while work:
        nid, top = work.pop()
        top_of[nid] = top
        work.extend((c, top) for c in nodes[nid].get("children", []))
    for node in doc["nodes"]:
        if node["hitCount"]:
            out.self_by_function[node["callFrame"]["functionName"]] += node["hitCount"]
            out.total += node["hitCount"]
            if node["id"] in top_of:
                out.roots[top_of[node["id"]]] += node["hitCount"]
    return out


@dataclass
class SvgFrame:
    title: str
    name: str
    count: int
    offset: int
    value: int
    x: float
    width: float
    y: float
    text: str


def svg_frames(data: bytes) -> tuple[ET.Element, list[SvgFrame]]:
    """The parsed document and its frames (every ``g.f``)."""
    root = ET.fromstring(data)
    frames = []
    for g in root.iter(SVG_NS + "g"):
        if g.get("class") != "f":
            continue
        title = g.find(SVG_NS + "title")
        rect = g.find(SVG_NS + "rect")
        text = g.find(SVG_NS + "text")
        assert title is not None and rect is not None and text is not None
        m = TITLE.fullmatch(title.text or "")
        assert m, title.text
        frames.append(
            SvgFrame(
                title.text or "",
                m.group(1),
                int(m.group(2).replace(",", "")),
                int(g.get("data-o", "-1")),
                int(g.get("data-v", "-1")),
                float(rect.get("x", "nan")),
                float(rect.get("width", "nan")),
                float(rect.get("y", "nan")),
                text.text or "",
            )
        )
    return root, frames


def svg(data: bytes) -> Counts:
    """Self samples by function: a frame's count less its drawn children's, by name."""
    _, frames = svg_frames(data)
    by_y: dict[float, list[SvgFrame]] = {}
    for f in frames:
        by_y.setdefault(f.y, []).append(f)
    ys = sorted(by_y)  # smaller y is deeper (root at the bottom)
    out = Counts()
    root_y = ys[-1]
    out.total = sum(f.count for f in by_y[root_y])
    if len(ys) > 1:
        for f in by_y[ys[-2]]:
            out.roots[f.name] += f.count
    for k, y in enumerate(ys):
        above = by_y[ys[k - 1]] if k > 0 else []
        for f in by_y[y]:
            if y == root_y:
                continue  # "all" is not a function
            kids = sum(
                c.value for c in above if c.offset >= f.offset and c.offset < f.offset + f.value
            )
            own = f.count - kids
            if own:
                out.self_by_function[f.name.rsplit(" (", 1)[0]] += own
    return out


def pprof(data: bytes) -> tuple[Counts, Any]:
    """Samples by leaf function (first sample type), and the parsed message."""
    msg = profile_pb.parse(data)
    st = msg.string_table
    fn_name = {f.id: st[f.name] for f in msg.function}
    loc_fn = {loc.id: loc.line[-1].function_id for loc in msg.location}
    out = Counts()
    for s in msg.sample:
        out.self_by_function[fn_name[loc_fn[s.location_id[0]]]] += s.value[0]
        out.roots[fn_name[loc_fn[s.location_id[-1]]]] += s.value[0]
        out.total += s.value[0]
    return out, msg

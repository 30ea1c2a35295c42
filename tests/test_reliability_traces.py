"""Issue #7: hostile traces through EVERY command, each in a bounded child process.

A trace may come from anyone. Crafted .fkt files (huge claimed lengths, deep nesting,
dangling and forward references, invalid UTF-8, NaN/negative/overflowing numbers,
duplicate ids, huge names and stacks) go through ``info``, ``info --json``, ``convert
--to`` every format, ``top`` and ``diff`` (both sides, every ``--to``). Each command runs
in its own forked child under RLIMIT_AS (its start-up size + 1 GiB), RLIMIT_FSIZE and a
wall-clock timeout, and must either

* fail with exactly one line ``flamekit: error: ...`` and exit 2, writing nothing, or
* succeed (a documented best effort: a truncated file converts what it holds, with one
  warning line) with output its format's readers parse.

FKT stacks are flat lists of code refs, so a stack cannot refer to another stack: the
"cycles" a nested format could have are impossible by construction. The nearest hostile
shapes are covered: a stack naming its own id as a code ref, forward references, and a
recursion 20,000 frames deep.

The second half fuzzes the reader + model + every converter + top + diff with
hypothesis on mutated real traces, for a fixed number of examples.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import msgpack
import pytest
from bounded import run_bounded
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mutations import mutate

import flamekit.commands.convert
import flamekit.commands.diff
import flamekit.commands.info
import flamekit.commands.top  # noqa: F401  (loaded before forking: children start warm)
from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats
from flamekit.diffing.model import build_diff
from flamekit.diffing.outputs import render_difffolded, render_json, render_table
from flamekit.diffing.svg import render_svg
from flamekit.errors import FlamekitError, TraceError
from flamekit.trace import load
from flamekit.trace import records as R
from flamekit.trace.samplecodec import pack_sample
from flamekit.trace.synthetic import write_synthetic
from flamekit.trace.writer import preamble

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readers import profile_pb  # noqa: E402

FORMATS = list(formats())
DIFF_TO = ["table", "json", "difffolded", "svg"]


# -- crafting files ---------------------------------------------------------------------

HDR = R.encode(R.Header("t", 0, 0, 100.0, 1, ("hostile",), "3.12.0", "h", "k", {}))
THREAD = [R.THREAD, 0, 1, 11, 12, "main", 0]


def code(ref: int, name: str = "f", filename: str = "f.py", table=b"", fmt: int = 0) -> list:
    return [R.CODE, ref, 1, 0x1000 + ref, name, None, filename, 1, table, fmt]


def samples(*stack_ids: int, thread: int = 0, dt: int = 1_000_000) -> list:
    blob = bytearray()
    for sid in stack_ids:
        pack_sample(blob, dt, thread, 0, sid)
    return [R.SAMPLES, bytes(blob)]


def end(n: int, duration: int = 10_000_000) -> list:
    return [R.END, "duration", None, n, 0, duration]


GOOD_BODY = [THREAD, code(1), code(2, "g"), [R.STACK, 1, [1, 4, 2, 8]], samples(1, 1, 0, 1)]


def pack(*objs, raw: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    return preamble(*version) + b"".join(msgpack.packb(o, use_bin_type=True) for o in objs) + raw


def with_header(**changes) -> list:
    h = json.loads(json.dumps(HDR[1]))
    h.update(changes)
    return [R.HEADER, h]


def bad_utf8(obj: list, good: str) -> bytes:
    """``obj`` packed with the str ``good`` (4 ASCII letters) turned into invalid UTF-8."""
    raw = msgpack.packb(obj, use_bin_type=True)
    assert raw.count(good.encode()) == 1
    return raw.replace(good.encode(), b"\xff\xfe\xed\xa0")


DEEP = 20_000
BIG_NAME = "N" * (256 << 10)

#: name -> (file bytes, expectation). Expectation: "corrupt:WORDS" (every command exit 2
#: naming WORDS), "cut" (readable prefix with samples, a warning), "ok" (readable with
#: samples), "nosamples" (readable, nothing to convert).
CASES: dict[str, tuple[bytes, str]] = {
    # msgpack framing
    "str-4GiB-claimed": (pack(HDR, *GOOD_BODY, raw=b"\xdb\xff\xff\xff\xff"), "cut"),
    "bin-2GiB-claimed-40MiB-behind": (
        pack(HDR, *GOOD_BODY, raw=b"\xc6\x7f\xff\xff\xff" + b"\0" * (40 << 20)),
        "corrupt:larger than",
    ),
    "array-4G-elements-claimed": (
        pack(HDR, *GOOD_BODY, raw=b"\xdd\xff\xff\xff\xff" + b"\x00" * 64),
        "corrupt:undecodable",
    ),
    "header-map-4G-entries": (
        preamble() + b"\x92\x00\xdf\xff\xff\xff\xff" + b"\xa1a\x00" * 16,
        "corrupt:undecodable",
    ),
    "nesting-100k-deep": (pack(HDR, *GOOD_BODY, raw=b"\x91" * 100_000 + b"\x00"), "corrupt:"),
    "ext-type": (pack(HDR, *GOOD_BODY, raw=b"\xd4\x01\x00"), "corrupt:undecodable"),
    "record-not-an-array": (pack(HDR, *GOOD_BODY, 7), "corrupt:non-empty array"),
    "record-kind-a-float": (pack(HDR, *GOOD_BODY, [1.5, 2]), "corrupt:kind must be an integer"),
    "map-key-not-a-string": (
        preamble() + b"\x92\x00\x81\x01\x02",
        "corrupt:undecodable",
    ),
    # references
    "stack-to-undefined-code": (
        pack(HDR, THREAD, code(1), [R.STACK, 1, [1, 0, 9, 0]]),
        "corrupt:undefined code 9",
    ),
    "stack-naming-itself-as-code": (
        pack(HDR, THREAD, code(1), [R.STACK, 5, [5, 0]]),
        "corrupt:undefined code 5",
    ),
    "sample-to-undefined-stack": (pack(HDR, *GOOD_BODY, samples(3)), "corrupt:undefined stack 3"),
    "sample-before-its-stack": (
        pack(HDR, THREAD, code(1), samples(1), [R.STACK, 1, [1, 0]]),
        "corrupt:undefined stack 1",
    ),
    "sample-to-undefined-thread": (
        pack(HDR, *GOOD_BODY, samples(1, thread=6)),
        "corrupt:undefined thread 6",
    ),
    "stack-at-the-65536-frame-limit": (
        pack(HDR, THREAD, code(1), [R.STACK, 1, [1, 0] * R.MAX_STACK_DEPTH], samples(1), end(1)),
        "ok",
    ),
    "stack-over-the-65536-frame-limit": (
        pack(HDR, THREAD, code(1), [R.STACK, 1, [1, 0] * (R.MAX_STACK_DEPTH + 1)], samples(1)),
        "corrupt:65,537 frames",
    ),
    "line-table-over-the-1MiB-limit": (
        pack(HDR, THREAD, code(1, table=b"\x80" * (R.MAX_LINETABLE + 1), fmt=4)),
        "corrupt:line table of 1,048,577 bytes",
    ),
    "recursion-20k-frames": (
        pack(HDR, THREAD, code(1), [R.STACK, 1, [1, 0] * DEEP], samples(1, 1, 1), end(3)),
        "ok",
    ),
    # text
    "code-name-invalid-utf8": (
        pack(HDR, THREAD, raw=bad_utf8(code(1, "QQQQ"), "QQQQ")),
        "corrupt:undecodable",
    ),
    "filename-encoded-surrogate": (
        pack(HDR, THREAD, raw=bad_utf8(code(1, "f", "ZZZZ.py"), "ZZZZ")),
        "corrupt:undecodable",
    ),
    "thread-name-invalid-utf8": (
        pack(HDR, raw=bad_utf8([R.THREAD, 0, 1, 1, 1, "WWWW", 0], "WWWW")),
        "corrupt:undecodable",
    ),
    "hostname-invalid-utf8": (
        preamble() + bad_utf8(with_header(hostname="HHHH"), "HHHH"),
        "corrupt:undecodable",
    ),
    "name-of-256KiB-in-20-stacks": (
        pack(
            HDR,
            THREAD,
            code(1, BIG_NAME),
            *[[R.STACK, k, [1, k]] for k in range(1, 21)],
            samples(*range(1, 21)),
            end(20),
        ),
        "ok",
    ),
    "name-over-the-1MiB-cap": (
        pack(HDR, THREAD, code(1, "x" * ((1 << 20) + 1))),
        "corrupt:undecodable",
    ),
    "control-and-markup-names": (
        pack(
            HDR,
            [R.THREAD, 0, 1, 11, 12, "t\n<b>&amp;\x1b[31m", 0],
            code(1, "a;b\nc\r\x00<x y='1'>&\"", "/p;q\n\u2028\U0001f525.py"),
            [R.STACK, 1, [1, 0]],
            samples(1, 1),
            end(2),
        ),
        "ok",
    ),
    # numbers and times
    "rate-nan": (pack(with_header(rate_hz=float("nan")), *GOOD_BODY), "corrupt:rate_hz"),
    "rate-inf": (pack(with_header(rate_hz=float("inf")), *GOOD_BODY), "corrupt:rate_hz"),
    "rate-negative": (pack(with_header(rate_hz=-5.0), *GOOD_BODY), "corrupt:rate_hz"),
    "rate-zero": (pack(with_header(rate_hz=0), *GOOD_BODY, end(4)), "ok"),
    # a period of infinite ns (OverflowError in speedscope and pprof before), of 1e20 ns
    # (pprof: "does not fit in 64 bits")
    "rate-1e-300": (pack(with_header(rate_hz=1e-300), *GOOD_BODY), "corrupt:rate_hz"),
    "rate-1e-11": (pack(with_header(rate_hz=1e-11), *GOOD_BODY), "corrupt:rate_hz"),
    "rate-at-the-format's-least": (
        pack(with_header(rate_hz=R.MIN_RATE_HZ), *GOOD_BODY, end(4)),
        "ok",
    ),
    "end-duration-negative": (
        pack(HDR, *GOOD_BODY, [R.END, "duration", None, 4, 0, -1]),
        "corrupt:end duration",
    ),
    "end-duration-past-the-format's-times": (
        pack(HDR, *GOOD_BODY, [R.END, "duration", None, 4, 0, R.MAX_TIME_NS]),
        "corrupt:end duration",
    ),
    "end-duration-at-the-format's-last-time": (
        pack(HDR, *GOOD_BODY, [R.END, "duration", None, 4, 0, R.MAX_TIME_NS - 1]),
        "ok",
    ),
    "first-seen-negative": (
        pack(HDR, [R.THREAD, 0, 1, 1, 1, "m", -5]),
        "corrupt:first-seen",
    ),
    "times-overflow": (
        pack(HDR, *GOOD_BODY[:-1], samples(1, 1, dt=(1 << 63) - 1)),
        "corrupt:overflow",
    ),
    "times-past-the-format's-limit": (
        pack(HDR, *GOOD_BODY[:-1], samples(1, 1, dt=1 << 61)),
        "corrupt:overflow",
    ),
    "times-huge-but-valid": (pack(HDR, *GOOD_BODY[:-1], samples(1, 0, 1, dt=1 << 60)), "ok"),
    "wall-clock-at-the-format's-least": (
        pack(with_header(start_wall_ns=-R.MAX_TIME_NS), *GOOD_BODY, end(4)),
        "ok",
    ),
    "wall-clock-at-the-format's-most": (
        pack(with_header(start_wall_ns=R.MAX_TIME_NS), *GOOD_BODY, end(4)),
        "ok",
    ),
    # start + a time made pprof's time_nanos overflow (with --from 1, before)
    "wall-clock-at-uint64-max": (
        pack(with_header(start_wall_ns=(1 << 64) - 1), *GOOD_BODY, end(4)),
        "corrupt:start_wall_ns",
    ),
    "wall-clock-at-int64-min": (
        pack(with_header(start_wall_ns=-(1 << 63)), *GOOD_BODY, end(4)),
        "corrupt:start_wall_ns",
    ),
    "offsets-and-lines-extreme": (
        pack(
            HDR,
            THREAD,
            [R.CODE, 1, 1, 1, "f", None, "f.py", -(1 << 31), b"\xff" * 40, 4],
            [R.CODE, 2, 1, 2, "g", None, "g.py", 1 << 31, bytes(range(256)), 3],
            [R.CODE, 3, 1, 3, "h", None, "h.py", 7, b"\x80" * 9, 2],
            [R.CODE, 4, 1, 4, "i", None, "i.py", 7, b"\x01\x02", 99],
            [R.STACK, 1, [1, -(1 << 31), 2, 1 << 31, 3, 12345, 4, 2]],
            samples(1, 1),
            end(2),
        ),
        "ok",
    ),
    "refs-at-their-caps": (
        pack(
            HDR,
            [R.THREAD, 1 << 30, 1, None, None, None, 0],
            code(1 << 40),
            [R.STACK, 1 << 40, [1 << 40, 0]],
            samples(1 << 40, thread=1 << 30),
            end(1),
        ),
        "ok",
    ),
    # duplicates
    "code-ref-twice": (pack(HDR, THREAD, code(1), code(1)), "corrupt:code ref 1 defined twice"),
    "stack-id-twice": (
        pack(HDR, THREAD, code(1), [R.STACK, 1, [1, 0]], [R.STACK, 1, [1, 2]]),
        "corrupt:stack id 1 defined twice",
    ),
    "thread-ref-twice-renames": (
        pack(HDR, *GOOD_BODY, [R.THREAD, 0, 1, 11, 12, "renamed", 5], samples(1), end(5)),
        "ok",
    ),
    "process-twice": (
        pack(HDR, [R.PROCESS, 1, 0, ["a"], 0], [R.PROCESS, 1, 0, ["b"], 0], *GOOD_BODY, end(4)),
        "ok",
    ),
    "end-twice": (pack(HDR, *GOOD_BODY, end(4), end(4)), "corrupt:after the end"),
    "header-twice": (pack(HDR, *GOOD_BODY, HDR), "corrupt:second header"),
    # shapes of the file
    "empty": (b"", "corrupt:empty file"),
    "magic-only": (R.MAGIC, "corrupt:before its header"),
    "newer-major": (pack(HDR, version=(2, 0)), "corrupt:newer flamekit"),
    "not-fkt": (b"\x1f\x8b" + b"\0" * 100, "corrupt:not an FKT trace"),
    "no-samples": (pack(HDR, THREAD, code(1), end(0)), "nosamples"),
    "samples-cut-mid-varint": (
        pack(HDR, *GOOD_BODY, [R.SAMPLES, b"\x80"]),
        "corrupt:middle of a sample",
    ),
    "varint-too-long": (
        pack(HDR, *GOOD_BODY, [R.SAMPLES, b"\xff" * 12 + b"\x00\x00\x00"]),
        "corrupt:varint",
    ),
    "unknown-kinds-skipped": (
        pack(HDR, [99, b"\0" * 1000, {"x": [1, 2]}], *GOOD_BODY, [63], end(4)),
        "ok",
    ),
    "cut-mid-record": (pack(HDR, *GOOD_BODY, end(4))[:-3], "cut"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    out = {}
    for name, (data, _) in CASES.items():
        p = d / f"{name}.fkt"
        p.write_bytes(data)
        out[name] = p
    good = d / "good.fkt"
    with open(good, "wb") as f:
        write_synthetic(f, samples=400, stacks=20, threads=2)
    out["good"] = good
    return out


def commands(path: Path, good: Path, outdir: Path) -> list[list[str]]:
    p, g = str(path), str(good)
    cmds = [["info", p], ["info", "--json", p], ["top", p]]
    cmds += [["convert", p, "--to", f, "-o", str(outdir / f"out.{f}")] for f in FORMATS]
    cmds += [["diff", p, g], ["diff", g, p, "--to", "json"]]
    cmds += [["diff", p, g, "--to", "difffolded", "-o", "-"]]
    cmds += [["diff", g, p, "--to", "svg", "-o", str(outdir / "out.diff.svg")]]
    return cmds


COLLAPSED_LINE = re.compile(rb"^[^\n;]+(;[^\n;]+)* \d+$")


def check_output(kind: str, data: bytes) -> None:
    """The output parses as its format."""
    if kind == "collapsed":
        for line in data.splitlines():
            assert COLLAPSED_LINE.match(line), line[:200]
    elif kind in ("speedscope", "cpuprofile", "json"):
        json.loads(data)
    elif kind in ("svg",):
        ET.fromstring(data)
    elif kind == "pprof":
        profile_pb.parse(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


@pytest.mark.parametrize("name", list(CASES))
def test_every_command_answers_hostile_input_in_bounded_time_and_memory(
    name: str, files: dict[str, Path], tmp_path: Path
):
    _, expect = CASES[name]
    path = files[name]
    kind, _, words = expect.partition(":")
    slowest = 0.0
    for argv in commands(path, files["good"], tmp_path):
        r = run_bounded(argv)
        slowest = max(slowest, r.seconds)
        where = f"{name}: flamekit {' '.join(a if len(a) < 60 else '...' for a in argv)}"
        assert r.code in (0, 2), f"{where}: exit {r.code} after {r.seconds:.1f} s\n{r.stderr}"
        assert "Traceback" not in r.stderr, f"{where}\n{r.stderr}"
        lines = r.stderr.splitlines()
        cmd = argv[0]
        if kind == "corrupt":
            assert r.code == 2, f"{where}: exit {r.code}\n{r.stderr}"
            assert r.stdout == b"", where
            want = words
            errors = [ln for ln in lines if ln.startswith("flamekit: error: ")]
            # diff checks both sides: one line per bad side, nothing else
            assert errors and len(errors) == len(lines), f"{where}\n{r.stderr}"
            assert want in errors[-1] and str(path) in errors[-1], f"{where}\n{r.stderr}"
        else:
            assert r.code == 0, f"{where}: exit {r.code}\n{r.stderr}"
            warnings = [ln for ln in lines if ln.startswith("flamekit: warning: ")]
            assert len(warnings) == len(lines) <= 2, f"{where}\n{r.stderr}"
            if kind == "cut":
                assert warnings and "truncated" in warnings[0], f"{where}\n{r.stderr}"
            if kind == "nosamples" and cmd != "info":
                # a result, not bad input: one line naming the file says so (the output
                # of top and diff's table, a warning beside convert's empty file), and
                # diff, with nothing to compare, writes nothing for a tool to read
                table = cmd == "top" or (cmd == "diff" and "--to" not in argv)
                said = r.stdout.decode().splitlines() if table else warnings
                assert len(said) == 1 and f"{path}: the trace holds no samples" in said[0], where
                if cmd == "convert":
                    check_output(argv[3], (tmp_path / f"out.{argv[3]}").read_bytes())
                else:
                    assert not (tmp_path / "out.diff.svg").exists(), where
                continue
            if cmd == "convert":
                fmt = argv[3]
                check_output(fmt, (tmp_path / f"out.{fmt}").read_bytes())
            elif argv[-1] == "json" or argv[:2] == ["info", "--json"]:
                json.loads(r.stdout)
            elif "difffolded" in argv:
                for line in r.stdout.splitlines():
                    assert re.match(rb"^[^\n]+ \d+ \d+$", line), line[:200]
            elif "svg" in argv:
                ET.fromstring((tmp_path / "out.diff.svg").read_bytes())
            else:
                assert r.stdout.decode("utf-8").strip(), where
                # text output: one row per line, no raw control characters smuggled in
                assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", r.stdout.decode()), where
    # leftovers: no temporary files from a failed convert
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    print(f"\n{name}: slowest command {slowest:.2f} s")


# -- fuzzing the whole offline pipeline --------------------------------------------------


def _pipeline(path: str) -> None:
    """Everything the offline commands do with a trace, in process."""
    try:
        tr = load(path)
    except TraceError as exc:
        assert "\n" not in str(exc)
        event("refused by the reader")
        return
    event(("converted" if len(tr) else "no samples: converted empty")
          + (" (truncated)" if tr.truncated else ""))  # fmt: skip
    prof = build_profile(tr)
    for lines in (True, False):
        sel = select(prof, FilterOptions())
        for name, fmt in formats().items():  # an empty selection makes an empty file
            data = b"".join(fmt.convert(sel, ConvertOptions(lines=lines)))
            check_output(name, data)
        if not len(sel):
            return  # a diff needs samples on both sides (the command says so)
    other = select(build_profile(load(SEED_GOOD)), FilterOptions())
    for a, b in ((sel, other), (other, sel), (sel, sel)):
        d = build_diff(a, b)
        rows = d.rows("self")
        json.loads(render_json(d, rows, "self", len(rows)))
        render_table(d, rows, "self", len(rows)).encode("utf-8", "backslashreplace")
        for line in b"".join(render_difffolded(d)).splitlines():
            assert re.match(rb"^[^\n]+ \d+ \d+$", line), line[:200]
        ET.fromstring(b"".join(render_svg(d)))


SEED_GOOD = Path(tempfile.gettempdir()) / f"flamekit-rel-seed-{os.getpid()}.fkt"


@pytest.fixture(scope="module")
def seed_traces() -> list[bytes]:
    with open(SEED_GOOD, "wb") as f:
        write_synthetic(f, samples=120, stacks=12, threads=3, depth=6)
    yield [
        SEED_GOOD.read_bytes(),
        CASES["control-and-markup-names"][0],
        CASES["offsets-and-lines-extreme"][0],
    ]
    SEED_GOOD.unlink()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fuzz_reader_model_and_every_converter(seed_traces: list[bytes], data):
    """Byte-level mutations of real traces: every stage either refuses the file with one
    TraceError line or produces output its format's readers parse. No other exception."""
    buf = bytearray(data.draw(st.sampled_from(seed_traces)))
    mutate(data, buf, start=R.PREAMBLE_SIZE)
    with tempfile.NamedTemporaryFile(suffix=".fkt") as f:
        f.write(bytes(buf))
        f.flush()
        try:
            _pipeline(f.name)
        except FlamekitError as exc:  # e.g. a filter finding nothing: still one line
            assert "\n" not in str(exc)


# keep struct imported for readers of this file crafting their own cases
_ = struct


def _records(data: bytes) -> list:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data[R.PREAMBLE_SIZE :])
    return list(unpacker)


def _holds(rec, kind: int, i: int, types) -> bool:
    """Record ``rec`` is a ``kind`` record whose field ``i`` is of ``types``."""
    return (
        isinstance(rec, list) and rec[:1] == [kind] and len(rec) > i and isinstance(rec[i], types)
    )


VALUES = st.one_of(
    st.sampled_from([0, 1, -1, 2, 7, 1 << 30, (1 << 30) + 1, 1 << 31, 1 << 40, (1 << 63) - 1]),
    st.integers(-(1 << 63), (1 << 64) - 1),
    st.none(),
    st.booleans(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["a;b", "x\ny", "<&>", "\U0001f525", "", "\x00", "\u2028", " 12"]),
    st.binary(max_size=24),
    st.lists(st.integers(-3, 1 << 41), max_size=8),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fuzz_record_fields_through_every_converter(seed_traces: list[bytes], data):
    """Structure-aware: well-framed records whose fields, frames, sample blobs and order
    are hostile. Same promise: one TraceError line, or output that parses."""
    recs = _records(data.draw(st.sampled_from(seed_traces)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(recs) - 1))
        rec = recs[i]
        op = data.draw(st.sampled_from(["field", "field", "frame", "blob", "dup", "drop", "swap"]))
        if op == "field" and isinstance(rec, list) and len(rec) > 1:
            rec[data.draw(st.integers(1, len(rec) - 1))] = data.draw(VALUES)
        # (a field edit may already have made the frame list or the blob something else)
        elif op == "frame" and _holds(rec, R.STACK, 2, list) and rec[2]:
            rec[2][data.draw(st.integers(0, len(rec[2]) - 1))] = data.draw(VALUES)
        elif op == "blob" and _holds(rec, R.SAMPLES, 1, (bytes, bytearray)):
            blob = bytearray(rec[1])
            if blob:
                blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
            rec[1] = bytes(blob)
        elif op == "dup":
            recs.insert(
                data.draw(st.integers(1, len(recs))),
                json.loads(json.dumps(rec, default=list))
                if not isinstance(rec, list) or R.SAMPLES not in rec[:1]
                else list(rec),
            )
        elif op == "drop" and i:
            del recs[i]
        elif op == "swap" and i and i + 1 < len(recs):
            recs[i], recs[i + 1] = recs[i + 1], recs[i]
    with tempfile.NamedTemporaryFile(suffix=".fkt") as f:
        f.write(preamble() + b"".join(msgpack.packb(r, use_bin_type=True) for r in recs))
        f.flush()
        try:
            _pipeline(f.name)
        except FlamekitError as exc:
            assert "\n" not in str(exc)

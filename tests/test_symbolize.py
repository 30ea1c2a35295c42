"""flamekit.symbolize against the interpreters' own answers, plus garbage and round trips.

The main test runs ``tests/linetable_dump.py`` under every real interpreter (the recordable
ones and pyenv's 2.7, 3.6 and 3.7), which reports each code object's raw table together
with what the interpreter itself says the line is at every offset (PyCode_Addr2Line,
dis.findlinestarts / co_lines, co_positions). Any disagreement is a bug in the decoder.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linetable_dump import encode_location
from pythons import Interpreter, legacy, recordable

from flamekit.codeformat import (
    ALL_FORMATS,
    LINETABLE_310,
    LINETABLE_NONE,
    LNOTAB_SIGNED,
    LNOTAB_UNSIGNED,
    LOCATIONS_311,
    format_for_version,
)
from flamekit.errors import TraceError
from flamekit.symbolize import (
    MAX_LINE,
    OPEN_END,
    LineTable,
    Symbolizer,
    decode,
    line_for_offset,
    line_ranges,
)

DUMP = Path(__file__).resolve().parent / "linetable_dump.py"

#: Each real interpreter must yield at least this many distinct offsets, so a dump that
#: silently loses its stdlib sources fails instead of passing on a handful of codes.
MIN_OFFSETS = 150_000


INTERPRETERS = legacy() + recordable()


@pytest.fixture(scope="module")
def dumps() -> dict[str, tuple[dict | None, str, float]]:
    """Every interpreter's dump, produced concurrently: id -> (json or None, stderr, secs)."""

    def run(interp: Interpreter) -> tuple[dict | None, str, float]:
        start = time.monotonic()
        proc = subprocess.run([interp.path, str(DUMP)], capture_output=True, text=True, timeout=300)
        took = time.monotonic() - start
        if proc.returncode != 0:
            return None, proc.stderr, took
        return json.loads(proc.stdout), proc.stderr, took

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = dict(zip(INTERPRETERS, pool.map(run, INTERPRETERS)))
    return {interp.id: result for interp, result in results.items()}


@pytest.mark.parametrize("interp", INTERPRETERS, ids=str)
def test_matches_interpreter(interp: Interpreter, dumps) -> None:
    data, stderr, took = dumps[interp.id]
    assert data is not None, f"{interp.path} {DUMP} failed:\n{stderr}"
    version = tuple(data["version"])
    assert version == interp.version
    assert data["addr2line"], "PyCode_Addr2Line must be reachable through ctypes"
    fmt = format_for_version(*version)
    step = 1 if version[0] == 2 else 2
    expected_truths = {"addr2line", "starts"} if version < (3, 10) else {"addr2line", "lines"}
    if version >= (3, 11):
        expected_truths.add("positions")

    offsets = checks = 0
    mismatches: list[tuple] = []
    unknown_lines = 0
    far_lines = False
    for code in data["codes"]:
        lt = decode(bytes.fromhex(code["table"]), fmt, code["first"])
        assert set(code["truth"]) == expected_truths
        assert lt.line(-1) == code["neg"] == code["first"], code["name"]
        if fmt in (LINETABLE_310, LOCATIONS_311):
            # The table covers the bytecode exactly; past it there is no instruction.
            assert lt.end == code["size"], code["name"]
            assert lt.line(code["size"]) is None
        offsets += len(range(0, code["size"], step))
        for source, ranges in code["truth"].items():
            for start, end, line in ranges:
                if line is None:
                    unknown_lines += 1
                elif line > 1 << 17:
                    far_lines = True
                for off in range(start, end, step):
                    checks += 1
                    got = lt.line(off)
                    if got != line and len(mismatches) < 20:
                        mismatches.append((code["name"], source, off, got, line))
                    elif got != line:
                        mismatches.append(())
    print(
        f"symbolize {interp.id}: {len(data['codes'])} codes, {offsets} offsets, "
        f"{checks} offset checks against {len(expected_truths)} sources, "
        f"{len(mismatches)} mismatches, dump took {took:.1f}s"
    )
    assert not mismatches, mismatches[:20]
    assert offsets >= MIN_OFFSETS
    assert far_lines, "the generated code far down the file went missing"
    if version >= (3, 10):
        assert unknown_lines, "3.10+ code always has instructions without a line"


def test_real_tables_exercise_every_311_entry_kind(dumps) -> None:
    """Compiled code alone (no synthetic tables) uses all 16 kinds of 3.11+ entries."""
    for interp in INTERPRETERS:
        if interp.version < (3, 11):
            continue
        data = dumps[interp.id][0]
        assert data is not None
        kinds = set()
        for code in data["codes"]:
            if code["name"].startswith("<synthetic"):
                continue
            kinds.update((b >> 3) & 15 for b in bytes.fromhex(code["table"]) if b & 0x80)
        assert kinds == set(range(16)), interp.id


# -- semantics that the real tables do not reach ---------------------------------------


def test_negative_offset_is_first_line_in_every_format() -> None:
    for fmt in ALL_FORMATS:
        assert line_for_offset(b"", fmt, 42, -1) == 42
        assert line_for_offset(b"\x00\x05", fmt, 42, -7) == 42


def test_no_table_and_unknown_format_map_everything_to_first_line() -> None:
    for fmt in (LINETABLE_NONE, 99, -3):
        lt = decode(b"\x80\x01\x02", fmt, 7)
        assert lt.ranges == ((0, OPEN_END, 7),)
        assert lt.line(0) == lt.line(10**9) == 7


def test_lnotab_last_line_runs_on_and_310_311_stop_at_end() -> None:
    assert line_for_offset(b"\x04\x01", LNOTAB_SIGNED, 10, 10**6) == 11
    assert line_for_offset(b"\x04\x01", LNOTAB_UNSIGNED, 10, 3) == 10
    assert line_for_offset(b"\x04\x01", LINETABLE_310, 10, 3) == 11
    assert line_for_offset(b"\x04\x01", LINETABLE_310, 10, 4) is None
    one_unit = bytes(encode_location(13, 1, 5))
    assert line_for_offset(one_unit, LOCATIONS_311, 10, 0) == 15
    assert line_for_offset(one_unit, LOCATIONS_311, 10, 1) == 15
    assert line_for_offset(one_unit, LOCATIONS_311, 10, 2) is None


def test_signedness_differs_between_27_and_36() -> None:
    table = b"\x02\xff"
    assert line_for_offset(table, LNOTAB_UNSIGNED, 10, 2) == 265
    assert line_for_offset(table, LNOTAB_SIGNED, 10, 2) == 9


def test_310_zero_spans_carry_deltas_and_minus_128_is_no_line() -> None:
    table = b"\x00\x7f\x00\x7f\x04\x02\x02\x80\x02\x01"
    assert line_ranges(table, LINETABLE_310, 1) == (
        (0, 4, 257),
        (4, 6, None),
        (6, 8, 258),
    )


def test_ranges_merge_neighbours_on_one_line() -> None:
    table = bytes(encode_location(13, 2, 3) + encode_location(3, 1, 0) + encode_location(15, 1, 0))
    assert line_ranges(table, LOCATIONS_311, 1) == ((0, 6, 4), (6, 8, None))


def test_out_of_range_lines_are_unknown_but_keep_counting() -> None:
    table = bytes(encode_location(13, 1, -5) + encode_location(13, 1, 5))
    assert line_ranges(table, LOCATIONS_311, 3) == ((0, 2, None), (2, 4, 3))
    assert line_for_offset(b"", LNOTAB_SIGNED, -2, 0) is None
    assert line_for_offset(b"", LNOTAB_SIGNED, -2, -1) is None
    assert line_for_offset(b"", LNOTAB_SIGNED, MAX_LINE + 1, 0) is None
    assert line_for_offset(b"", LNOTAB_SIGNED, 0, 0) == 0


def test_311_corruption_stops_decoding() -> None:
    good = bytes(encode_location(13, 1, 1))
    # A table must open with an entry header.
    assert line_ranges(b"\x05" + good, LOCATIONS_311, 1) == ()
    # A varint cut short by the next header, or longer than any C int.
    cut = bytes([0x80 | (13 << 3), 0x40]) + good
    assert line_ranges(good + cut, LOCATIONS_311, 1) == ((0, 2, 2),)
    too_long = bytes([0x80 | (13 << 3)]) + b"\x40" * 6 + b"\x01" + good
    assert line_ranges(good + too_long, LOCATIONS_311, 1) == ((0, 2, 2),)
    # Payload bytes of an unexpected length are skipped the way CPython skips them.
    odd_payload = bytes([0x80 | (3 << 3)]) + b"\x01\x02\x03" + good
    assert line_ranges(odd_payload, LOCATIONS_311, 1) == ((0, 2, 1), (2, 4, 2))


def test_trailing_odd_byte_of_pair_formats_is_ignored() -> None:
    for fmt in (LNOTAB_UNSIGNED, LNOTAB_SIGNED, LINETABLE_310):
        assert line_ranges(b"\x02\x01\x09", fmt, 1) == line_ranges(b"\x02\x01", fmt, 1)


def test_accepts_any_bytes_like_table() -> None:
    table = b"\x02\x01\x02\x01"
    for like in (bytearray(table), memoryview(table)):
        assert line_ranges(like, LNOTAB_SIGNED, 1) == line_ranges(table, LNOTAB_SIGNED, 1)
        assert line_for_offset(like, LNOTAB_SIGNED, 1, 3) == 2


def test_symbolizer_keys_and_code_records() -> None:
    sym = Symbolizer()
    sym.add("a", b"\x04\x01", LNOTAB_SIGNED, 10)
    assert "a" in sym and "b" not in sym
    assert sym.line("a", 0) == 10 and sym.line("a", 4) == 11 and sym.line("a", -1) == 10
    with pytest.raises(KeyError):
        sym.line("b", 0)
    sym.add("a", b"", LINETABLE_NONE, 3)  # replaces
    assert sym.line("a", 4) == 3
    sym.add("c", b"\x04\x01", LNOTAB_SIGNED, 10)
    sym.add("d", bytearray(b"\x04\x01"), LNOTAB_SIGNED, 10)
    assert sym.table("c") is sym.table("d")  # one decoding for identical tables
    assert isinstance(sym.table("c"), LineTable)

    class Code:
        linetable = b"\x04\x01"
        linetable_format = LNOTAB_SIGNED
        firstlineno = 10

    assert sym.line_for_code(Code(), 5) == 11


def test_symbolizer_accepts_trace_code_records() -> None:
    from flamekit.trace.records import Code

    code = Code(1, 1, 0x1000, "f", "f", "f.py", 5, b"\x02\x01\x02\x01", LNOTAB_SIGNED)
    sym = Symbolizer()
    assert [sym.line_for_code(code, off) for off in (-1, 0, 2, 4, 100)] == [5, 5, 6, 7, 7]


# -- garbage in: bounded, no exceptions ------------------------------------------------

FORMATS = st.sampled_from(ALL_FORMATS + (5, -1))
LINES = st.one_of(st.integers(-5, 300), st.integers(-(2**40), 2**40))


def check_invariants(lt: LineTable, table: bytes, fmt: int, firstlineno: int) -> None:
    ranges = lt.ranges
    expected_start = 0
    for start, end, line in ranges:
        assert start == expected_start and end > start
        assert line is None or 0 <= line <= MAX_LINE
        expected_start = end
    for (_, _, a), (_, _, b) in zip(ranges, ranges[1:]):
        assert a != b  # merged
    if fmt in (LNOTAB_UNSIGNED, LNOTAB_SIGNED, LINETABLE_310, LOCATIONS_311):
        assert len(ranges) <= len(table) + 1
    for start, end, line in ranges:
        assert lt.line(start) == line and lt.line(end - 1) == line
    assert lt.line(lt.end) is None or lt.end == OPEN_END
    assert lt.line(-1) == (firstlineno if 0 <= firstlineno <= MAX_LINE else None)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.binary(max_size=600), fmt=FORMATS, firstlineno=LINES)
def test_random_bytes_never_raise(table: bytes, fmt: int, firstlineno: int) -> None:
    try:
        lt = decode(table, fmt, firstlineno)
    except TraceError:  # allowed by contract, though no decoder raises today
        return
    check_invariants(lt, table, fmt, firstlineno)


@settings(max_examples=200)
@given(
    entries=st.lists(st.binary(min_size=1, max_size=8), max_size=80),
    firstlineno=LINES,
)
def test_random_311_entries_never_raise(entries: list[bytes], firstlineno: int) -> None:
    """Random bytes rarely look like 3.11+ tables; headers on random payloads do."""
    table = b"".join(bytes([0x80 | e[0]]) + e[1:] for e in entries)
    check_invariants(decode(table, LOCATIONS_311, firstlineno), table, 4, firstlineno)


def addr2line_27_36(table: bytes, signed: bool, firstlineno: int, addrq: int) -> int:
    """CPython 2.7's and 3.6's PyCode_Addr2Line (Objects/codeobject.c), transcribed: the
    walk the interpreter itself does over co_lnotab for every query. 3.6 reads the line
    increment as a signed char (3.6 made it signed); an odd trailing byte is no pair."""
    line, addr = firstlineno, 0
    for i in range(0, len(table) - 1, 2):
        addr += table[i]
        if addr > addrq:
            break
        step = table[i + 1]
        line += step - 256 if signed and step > 127 else step
    return line


@settings(max_examples=300)
@given(
    table=st.one_of(
        st.binary(max_size=80),  # any bytes, large steps of both kinds included
        st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=40).map(
            lambda pairs: bytes(b for p in pairs for b in p)  # compiled code's small steps
        ),
    ),
    fmt=st.sampled_from((LNOTAB_UNSIGNED, LNOTAB_SIGNED)),
    firstlineno=LINES,
)
def test_lnotab_answers_as_the_27_and_36_interpreters_do(
    table: bytes, fmt: int, firstlineno: int
) -> None:
    """Beside test_matches_interpreter (compiled code, asked of the real interpreters):
    any co_lnotab, 2.7's (unsigned) and 3.6's (signed), at every byte offset it covers
    and past it, gives the interpreter's own line, or None where that is no line."""
    lt = decode(table, fmt, firstlineno)
    covered = sum(table[0 : len(table) - 1 : 2])
    for offset in range(-1, covered + 3):
        want = addr2line_27_36(table, fmt == LNOTAB_SIGNED, firstlineno, offset)
        assert lt.line(offset) == (want if 0 <= want <= MAX_LINE else None), offset


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_large_garbage_is_linear(fmt: int) -> None:
    tables = [
        random.Random(fmt).randbytes(1 << 20),
        bytes([0x80 | (13 << 3)]) + b"\x7f" * (1 << 20),  # one endless varint
        bytes([0x80 | (14 << 3) | 7]) + b"\x7e\x7f\x7f\x7f\x3f" * (1 << 18),  # huge deltas
        b"\xff" * (1 << 20),  # a million "no location" entries
    ]
    for table in tables:
        start = time.process_time()
        lt = decode(table, fmt, 1)
        assert time.process_time() - start < 5
        assert len(lt) <= len(table) + 1
        assert lt.line(12345) is None or isinstance(lt.line(12345), int)


# -- 3.11+ round trip ------------------------------------------------------------------

ENTRY = st.one_of(
    st.tuples(st.integers(0, 9), st.integers(1, 8), st.just(0)),
    st.integers(10, 12).flatmap(
        lambda k: st.tuples(st.just(k), st.integers(1, 8), st.just(k - 10))
    ),
    st.tuples(
        st.sampled_from((13, 14)),
        st.integers(1, 8),
        st.one_of(st.integers(-300, 300), st.integers(-(2**31), 2**31 - 1)),
    ),
    st.tuples(st.just(15), st.integers(1, 8), st.just(0)),
)


@settings(max_examples=300)
@given(
    entries=st.lists(ENTRY, max_size=60),
    firstlineno=st.one_of(st.integers(0, 1000), st.integers(0, MAX_LINE)),
    cols=st.tuples(st.integers(0, 3), st.integers(0, 127), st.integers(0, 127)),
)
def test_311_round_trip(entries: list[tuple[int, int, int]], firstlineno: int, cols) -> None:
    table = b"".join(bytes(encode_location(k, n, d, *cols)) for k, n, d in entries)
    expected: list[int | None] = []  # one line per code unit
    line = firstlineno
    for kind, units, delta in entries:
        line += delta
        known = kind != 15 and 0 <= line <= MAX_LINE
        expected.extend([line if known else None] * units)
    lt = decode(table, LOCATIONS_311, firstlineno)
    assert lt.end == 2 * len(expected)
    got = [lt.line(2 * u) for u in range(len(expected))]
    assert got == expected
    assert [lt.line(2 * u + 1) for u in range(len(expected))] == expected
    assert lt.line(2 * len(expected)) is None

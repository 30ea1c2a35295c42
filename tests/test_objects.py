"""CPython objects read from a live target (flamekit.record.objects).

Every interpreter on this machine (pyenv 2.7, 3.6-3.13, Debian's stripped 3.11, 3.14)
runs tests/targets/objects_known.py, which holds objects of every kind the reader
decodes and prints their addresses (id()); each is read from outside and compared with
the value the target holds (expected() below mirrors the target's table). Then: the
checks of a read fail once the target changes the object, garbage addresses and garbage
memory give None (never an exception, a hang or a big allocation), the table is what
the headers give, and the pure decoders hold for any input (hypothesis).
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flamekit.errors import TargetError
from flamekit.record.objects import Limits, ObjectReader, Opaque, Partial, TypeRef, parse
from flamekit.record.objects.offsets import DEBUG_FIELDS, Offsets, offsets_for
from flamekit.record.objects.reader import _text_layout
from flamekit.record.tables.objects import TABLES
from flamekit.record.target import PythonTarget, open_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pythons import Interpreter  # noqa: E402
from targets import objects_known  # noqa: E402
from test_threadnames import INTERPRETERS, GarbageMemory, launch, read_line, stop  # noqa: E402

HERE = Path(__file__).resolve().parent
KNOWN = HERE / "targets" / "objects_known.py"
LONG = objects_known.LONG


def expected(version: tuple[int, int]) -> dict[str, Any]:
    """What values() gives for the target's objects that it gives back as they are
    (LIMITS holds them whole): the target's own table, as this Python makes it, with
    what 2.7 holds differently."""
    objects = objects_known.known_objects()
    plain = list(objects)[: list(objects).index("long")]
    out = {name: objects[name] for name in plain}
    out["subclass"] = str(out["subclass"])  # read as the str it is
    out["point"] = tuple(out["point"])
    if version[0] == 2:  # an attribute name is a 2.7 str: bytes
        out["split"] = {k.encode(): v for k, v in out["split"].items()}
        out["py2_str"] = b"plain-\xc3\xa9"
        out["py2_latin1"] = b"caf\xe9-\xff"
        out["py2_long"] = 7
        out["py2_unicode"] = "\u03bb-\U0001f40d"
    else:
        out["surrogates"] = objects["surrogates"]
    return out


LIMITS = Limits(depth=3, items=8, chars=40)


@dataclass
class Known:
    interp: Interpreter
    proc: subprocess.Popen
    target: PythonTarget
    ids: dict[str, int]  #: name -> id(obj), as the target printed them

    def reader(self) -> ObjectReader:
        return ObjectReader(self.target)

    def mutate(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("mutate\n")
        self.proc.stdin.flush()
        assert read_line(self.proc, 30).strip() == "mutated"


@pytest.fixture(scope="module", params=INTERPRETERS, ids=str)
def known(request: pytest.FixtureRequest) -> Iterator[Known]:
    interp: Interpreter = request.param
    proc, info = launch([interp.path, str(KNOWN)])
    target = open_target(proc.pid)
    try:
        assert tuple(info["version"]) == interp.version
        yield Known(interp, proc, target, info["ids"])
    finally:
        target.close()
        stop(proc)


def same(got: Any, want: Any) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told from 0.0, and bool from int."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)
        )
    if isinstance(want, (tuple, list)):
        return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return bool(got == want)


# -- every kind, every interpreter -------------------------------------------------------


def test_values_of_every_kind(known: Known) -> None:
    want = expected(known.interp.version)
    names = list(want)
    got = known.reader().values([known.ids[n] for n in names], LIMITS)
    for name, read in zip(names, got):
        assert read is not None, name
        assert same(read.value, want[name]), (name, read.value, want[name])


def test_nan_and_types_and_others(known: Known) -> None:
    ids = known.ids
    reader = known.reader()
    nan, cls, int_type, instance, big = (
        r.value if r else None
        for r in reader.values(
            [ids["nan"], ids["class"], ids["int_type"], ids["instance"], ids["big_dict"]], LIMITS
        )
    )
    assert isinstance(nan, float) and math.isnan(nan)
    assert cls == TypeRef(ids["class"], "Slots")
    assert int_type == TypeRef(ids["int_type"], "int")
    assert instance == Opaque(ids["instance"], "Slots")
    # A dict longer than the limit: its first items, and its real length.
    assert isinstance(big, Partial) and big.kind is dict and big.length == 100
    assert len(big.head) == LIMITS.items
    assert all(v == k * k for k, v in big.head)


def test_depth_limit(known: Known) -> None:
    got = known.reader().values([known.ids["tuple"]], Limits(depth=1, items=8, chars=40))[0]
    assert got is not None
    one, inner, empty = got.value
    assert one == 1 and inner == Partial(tuple, (), 2) and empty == Partial(list, [], 0)
    top = known.reader().values([known.ids["dict"]], Limits(depth=0))[0]
    assert top is not None and top.value == Partial(dict, (), 3)


def test_typed_reads(known: Known) -> None:
    ids = known.ids
    reader = known.reader()
    py2 = known.interp.version[0] == 2
    strs = ["ascii", "latin1", "ucs2", "ucs4", "nonbmp_only", "subclass", "empty"]
    want = expected(known.interp.version)
    got = reader.strs([ids[n] for n in [*strs, "long"]])
    assert [r.value if r else None for r in got] == [*(want[n] for n in strs), LONG]
    if py2:  # 2.7 str reads as UTF-8 text too
        assert reader.strs([ids["py2_str"]])[0].value == "plain-é"  # type: ignore[union-attr]
        # bytes that are not UTF-8 as surrogate escapes, as Python 3 would decode them;
        # for a trace (UTF-8), escaped in the text: shown, never dropped or replaced
        assert reader.strs([ids["py2_latin1"]])[0].value == "caf\udce9-\udcff"  # type: ignore[union-attr]
        assert reader.strs([ids["py2_latin1"]], utf8_safe=True)[0].value == "caf\\xe9-\\xff"  # type: ignore[union-attr]
    else:  # lone surrogates kept, or replaced for a trace
        assert reader.strs([ids["surrogates"]])[0].value == "\ud83d\udc0d-\udcff"  # type: ignore[union-attr]
        assert reader.strs([ids["surrogates"]], utf8_safe=True)[0].value == "\ufffd\ufffd-\ufffd"  # type: ignore[union-attr]
    assert reader.bytestrings([ids["bytes"], ids["empty_bytes"]])[0].value == b"a\x00b\x00\xff"  # type: ignore[union-attr]
    ints = ["zero", "minus_one", "two_30", "minus_two_100", "two_1000", "two_62", "true"]
    assert [r.value if r else None for r in reader.ints([ids[n] for n in ints])] == [
        0, -1, 2**30, -(2**100), 2**1000, 2**62, 1
    ]  # fmt: skip
    assert [r.value if r else None for r in reader.floats([ids["float"], ids["minus_inf"]])] == [
        1.5,
        -math.inf,
    ]
    seqs = reader.sequences([ids["tuple"], ids["list"], ids["empty_tuple"], ids["point"]])
    assert [(s.value.kind, s.value.length) for s in seqs if s] == [
        ("tuple", 3),
        ("list", 3),
        ("tuple", 0),
        ("tuple", 2),
    ]
    items = seqs[1].value.addresses  # type: ignore[union-attr]
    assert [r.value if r else None for r in reader.values(items)] == [1, "two", 3.0]
    assert reader.type_names([ids["class"], ids["int_type"]])[0].value == "Slots"  # type: ignore[union-attr]
    tp = reader.types_of([ids["instance"]])[0]
    assert tp is not None and tp.value == ids["class"]


def test_lookups(known: Known) -> None:
    ids = known.ids
    reader = known.reader()
    a = reader.dict_lookup([ids["dict"], ids["split"]], "a")
    assert a[1] is None and a[0] is not None and reader.ints([a[0].value])[0].value == 1  # type: ignore[union-attr]
    by_int = reader.dict_int_lookup(ids["dict"], {2, 3})
    assert by_int is not None and set(by_int) == {2}
    assert reader.strs([by_int[2].value])[0].value == "b"  # type: ignore[union-attr]
    assert reader.dict_int_lookup(ids["list"], {2}) is None  # not a dict
    beta = reader.attributes([ids["instance"], ids["other"]], "beta")
    assert beta[1] is None and beta[0] is not None
    assert reader.strs([beta[0].value])[0].value == "two"  # type: ignore[union-attr]
    assert reader.attributes([ids["other"]], "x")[0] is not None
    entries = reader.dicts([ids["big_dict"]])[0]
    assert entries is not None and len(entries.value) == 100


def test_wrong_kinds_are_none(known: Known) -> None:
    ids = known.ids
    reader = known.reader()
    assert reader.strs(
        [ids["zero"], ids["bytes"] if known.interp.version[0] > 2 else ids["float"]]
    ) == [None, None]
    assert reader.ints([ids["ascii"], ids["float"]]) == [None, None]
    assert reader.floats([ids["zero"]]) == [None]
    assert reader.sequences([ids["dict"]]) == [None]
    assert reader.dicts([ids["list"]]) == [None]
    assert reader.bytestrings([ids["ascii"] if known.interp.version[0] > 2 else ids["zero"]]) == [
        None
    ]
    assert reader.module_dicts([ids["dict"]]) == [None]


# -- consistency -----------------------------------------------------------------------


def test_checks_hold_until_the_target_changes(known: Known) -> None:
    """Reads whose objects did not change hold; those whose objects changed do not."""
    ids = known.ids
    reader = known.reader()
    names = ["list", "dict", "ascii", "two_1000", "float"]
    before = reader.values([ids[n] for n in names], LIMITS)
    beta = reader.attributes([ids["instance"]], "beta")[0]
    keyed = reader.dict_lookup([ids["keyed"]], objects_known.KEY)[0]
    assert keyed is not None and reader.ints([keyed.value])[0].value == 5  # type: ignore[union-attr]
    groups = [r.checks for r in before if r] + [beta.checks if beta else (), keyed.checks]
    assert all(reader.hold(groups))
    known.mutate()
    # The key's UTF-8 cache does not make its value's read fail (nor the cached match).
    assert reader.hold(groups) == [False, False, True, True, True, False, True]
    again = reader.dict_lookup([ids["keyed"]], objects_known.KEY)[0]
    assert again is not None and reader.hold([again.checks]) == [True]
    after = reader.values([ids["list"], ids["dict"]], LIMITS)
    assert after[0] is not None and after[0].value == Partial(
        list, [1, "two", 3.0, 0, 1, 2, 3, 4], 103
    )
    assert after[1] is not None and isinstance(after[1].value, dict)
    assert after[1].value["a"] == 2
    new_beta = reader.attributes([ids["instance"]], "beta")[0]
    assert new_beta is not None and reader.strs([new_beta.value])[0].value == "three"  # type: ignore[union-attr]


# -- garbage ---------------------------------------------------------------------------


def every_read(reader: ObjectReader, addrs: list[int]) -> list[object]:
    """Each batch method on ``addrs``: none may raise (unreadable memory gives None)."""
    out: list[object] = []
    for batch in (
        reader.strs, reader.bytestrings, reader.ints, reader.floats, reader.sequences,
        reader.dicts, reader.type_names, reader.types_of, reader.values,
        reader.module_dicts, reader.sys_modules,
    ):  # fmt: skip
        out.extend(batch(addrs))
    out.extend(reader.dict_lookup(addrs, "a"))
    out.extend(reader.attributes(addrs, "beta"))
    out.extend(reader.dict_int_lookup(a, {1, 2}) for a in addrs)
    return out


def test_garbage_addresses_are_none(known: Known) -> None:
    """Unmapped, misaligned, kernel and mid-object addresses: None, no exception."""
    ids = known.ids
    reader = known.reader()
    base = ids["list"]
    garbage = [0, 1, 8, 0xFFFF, base + 1, base + 4, 1 << 47, 2**64 - 8, 0x10000, 0x7FFF_FFFF_F000]
    for got in every_read(reader, garbage):
        assert got is None, got
    # Real memory that is not what each reader wants (the middle of objects).
    for got in every_read(reader, [base + 8, ids["two_1000"] + 16, ids["long"] + 64]):
        assert got is None or type(got).__name__ in ("Read", "dict"), got


def test_garbage_memory_never_raises_or_allocates(known: Known) -> None:
    """Every read of memory made of garbage returns quickly, raises nothing, and never
    reads (so never allocates for) more than the bounds allow, however big the counts
    it meets: lengths of 2**40 and 2**64-1 are among the words."""
    reader = known.reader()
    assert reader.off is not None
    reader.read_type_symbols()
    real = dict(reader.types)
    pointers = [0x7F0000001000 + 8 * i for i in range(0, 4096, 37)]
    huge = [1 << 20, 1 << 32, 1 << 40, 2**63 - 1, 2**64 - 1]
    words = [*real.values(), *pointers, *huge, 0, 0, 1, 2, 3, 5, 16, 0x21, 0x8000_0001]
    tracemalloc.start()
    try:
        for seed in range(80):
            memory = GarbageMemory(seed, words)
            reader.memory = memory  # type: ignore[assignment]
            reader.forget()
            started = time.monotonic()
            every_read(reader, pointers[seed % 20 : seed % 20 + 4])
            assert time.monotonic() - started < 2.0, seed
            assert memory.biggest <= 8 << 20, (seed, memory.biggest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_garbage_offsets_never_raise(known: Known) -> None:
    """Wrong offsets read garbage: still no exception, and whatever comes back typed."""
    ids = list(known.ids.values())
    for field, value in (
        ("ob_type", 0),
        ("var_size", 8),
        ("dict_keys", 8),
        ("unicode_state", 0),
        ("long_digits", 0),
        ("tuple_items", 8),
    ):
        reader = known.reader()
        assert reader.off is not None
        if getattr(reader.off, field) is None:
            continue
        reader.configure(replace(reader.off, **{field: value}))
        every_read(reader, ids)


def test_a_gone_process_raises_target_error(known: Known) -> None:
    proc, info = launch([known.interp.path, str(KNOWN)])
    target = open_target(proc.pid)
    try:
        reader = ObjectReader(target)
        assert reader.strs([info["ids"]["ascii"]])[0] is not None
        stop(proc)
        with pytest.raises(TargetError):
            reader.strs([info["ids"]["ascii"]])
    finally:
        target.close()


# -- the table -------------------------------------------------------------------------


def test_object_table_is_reproducible() -> None:
    """tools/gen_object_tables.py --check: the committed table is what the headers give
    (entries whose headers are not installed here, like Debian's 3.14, are kept)."""
    out = subprocess.run(
        [sys.executable, str(HERE.parent / "tools" / "gen_object_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("interp", [i for i in INTERPRETERS if i.version >= (3, 13)], ids=str)
def test_debug_offsets_agree_with_the_table(interp: Interpreter) -> None:
    """On 3.13+ the target's _Py_DebugOffsets win; they must say what the headers said."""
    proc, _ = launch([interp.path, "-I", "-S", str(HERE / "targets" / "threadnames_bare.py")])
    target = open_target(proc.pid)
    try:
        live = offsets_for(target)
        table = Offsets.from_table(TABLES[f"{interp.version[0]}.{interp.version[1]}"], None)
        for key in DEBUG_FIELDS:
            assert getattr(live, key) == getattr(table, key), key
    finally:
        target.close()
        stop(proc)


# -- the pure decoders -----------------------------------------------------------------


def to_digits(n: int, shift: int = 30) -> bytes:
    out = []
    while n:
        out.append(n & ((1 << shift) - 1))
        n >>= shift
    return struct.pack(f"<{len(out)}I", *out)


@given(st.integers(min_value=0, max_value=1 << 2000))
def test_digits_value_round_trip(n: int) -> None:
    data = to_digits(n)
    assert parse.digits_value(data, len(data) // 4, 30, 4) == n


@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=12))
def test_digits_value_refuses_what_no_int_holds(digits: list[int]) -> None:
    data = struct.pack(f"<{len(digits)}I", *digits)
    got = parse.digits_value(data, len(digits), 30, 4)
    if max(digits) >= 1 << 30 or digits[-1] == 0:
        assert got is None
    else:
        assert got == sum(d << (30 * i) for i, d in enumerate(digits))
    assert parse.digits_value(data[:-1], len(digits), 30, 4) is None  # too short


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_int_hash_is_cpythons(n: int) -> None:
    assert parse.int_hash(n, py2=False) == hash(n)


@given(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
)
@example("\ud83d\udc0d")  # two lone surrogates that UTF-16 would pair into one character
def test_decode_text_is_exact_for_every_kind(text: str) -> None:
    widest = max((ord(c) for c in text), default=0)
    for size, fmt, fits in ((1, "B", widest < 0x100), (2, "H", widest < 0x10000), (4, "I", True)):
        if fits:
            data = struct.pack(f"<{len(text)}{fmt}", *map(ord, text))
            assert parse.decode_text(data, size, "surrogatepass") == text
            safe = parse.decode_text(data, size, "replace")
            assert safe is not None
            safe.encode("utf-8")  # a trace can hold it (no lone surrogate left)
            assert len(safe) == len(text)


def test_decode_text_refuses_garbage() -> None:
    assert parse.decode_text(struct.pack("<I", 0x110000), 4, "surrogatepass") is None
    assert parse.decode_text(b"ab", 3, "surrogatepass") is None


@given(st.integers(0, 7), st.booleans(), st.booleans(), st.integers(0, 3))
def test_pep393_state(kind: int, compact: bool, ascii_: bool, interned: int) -> None:
    state = interned | kind << 2 | compact << 5 | ascii_ << 6
    assert parse.pep393_state(state, 2, 5, 6) == (kind, compact, ascii_)


@given(st.binary(max_size=64))
def test_c_string(data: bytes) -> None:
    got = parse.c_string(data)
    assert got == (data.split(b"\0")[0] if b"\0" in data else None)


@given(st.integers(0, 2**64 - 1))
def test_live_is_a_plausible_refcount(word: int) -> None:
    head = struct.pack("<Q", word)
    assert parse.live(head) == (word & 0xFFFFFFFF != 0 and not word >> 32 & 0xFFFF)


TEXT_LAYOUTS = {
    minor: _text_layout(Offsets.from_table(entry, None), minor == "2.7")
    for minor, entry in TABLES.items()
}


@given(
    st.sampled_from(sorted(TEXT_LAYOUTS)),
    st.integers(0, 1 << 40),
    st.sampled_from([1, 2, 4]),
    st.booleans(),
    st.booleans(),
    st.integers(1, (1 << 47) - 1),
)
def test_text_header(
    minor: str, length: int, kind: int, compact: bool, ascii_: bool, pointer: int
) -> None:
    """A str header made from the generated table's offsets reads back as made."""
    t = TEXT_LAYOUTS[minor]
    head = bytearray(t.data + 8)
    struct.pack_into("<q", head, t.length, length)
    struct.pack_into("<Q", head, t.data, pointer)
    if t.state < 0:  # 2.7 unicode: always behind a pointer, fixed width
        assert parse.text_header(bytes(head), t) == (length, t.char_size, t.data + 8, pointer)
        return
    state = kind << t.kind_shift | compact << t.compact_shift | ascii_ << t.ascii_shift
    struct.pack_into("<I", head, t.state, state)
    got = parse.text_header(bytes(head), t)
    if compact:
        assert got == (length, kind, t.ascii_size if ascii_ else t.compact_size, 0)
    else:
        assert got == (length, kind, t.data + 8, pointer)
    struct.pack_into("<I", head, t.state, 3 << t.kind_shift)  # no such kind
    assert parse.text_header(bytes(head), t) is None

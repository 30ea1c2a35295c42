"""FKT 1.3's native records (record --native): NATIVE_OBJECT, NATIVE_STACK and
NATIVE_SAMPLES round-trip exactly, tie each sample to its native stack, are corruption
when they contradict the samples, are skipped by a reader that predates them, and cost a
trace recorded without --native nothing."""

from __future__ import annotations

import io
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace import headers, read_records, write_records

from flamekit.errors import TraceError
from flamekit.trace import TraceWriter, load
from flamekit.trace import records as R

u64 = st.integers(0, 2**64 - 1)
perms = st.sampled_from(["r-xp", "r--p", "rw-p", "---p"])
native_objects = st.builds(
    R.NativeObject,
    pid=st.integers(0, 2**32 - 1),
    path=st.text(max_size=40),
    build_id=st.none() | st.binary(min_size=1, max_size=20),
    bias=st.integers(-(2**63), 2**64 - 1),
    ranges=st.lists(st.tuples(u64, u64, u64, perms), max_size=5).map(tuple),
    first_seen_ns=st.integers(0, R.MAX_TIME_NS - 1),
)
native_stacks = st.builds(
    R.NativeStack,
    id=st.integers(1, 2**40),
    ips=st.lists(u64, max_size=40).map(tuple),
    cut=st.booleans(),
    eval_ends=st.none() | st.lists(st.integers(0, 2**16), max_size=6).map(tuple),
)
native_samples = st.builds(R.NativeSamples, blob=st.binary(max_size=32))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers, st.lists(st.one_of(native_objects, native_stacks, native_samples), max_size=20))
def test_native_records_read_back_equal(tmp_path, header, recs):
    got, _ = read_records(tmp_path, write_records([header, *recs]))
    assert got == [header, *recs]


HDR = R.Header("t", 0, 10**9, 100.0, 1, mode={"pausing": True, "native": True})


@given(
    samples=st.lists(
        st.tuples(
            st.integers(0, 10**9),
            st.integers(0, 4),  # which native stack (0: none)
            st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=8),
            st.booleans(),
        ),
        max_size=200,
    ),
    batch=st.integers(1, 9),
)
@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_each_sample_keeps_its_native_stack(tmp_path, samples, batch):
    """Whatever the batching, sample i of the model has the native stack it was written
    with, and the objects come back per process."""
    p = tmp_path / "n.fkt"
    obj = R.NativeObject(1, "/lib/x.so", b"\x01\x02", 0x7F0000000000, ((1, 2, 0, "r-xp"),), 5)
    with open(p, "wb") as f:
        w = TraceWriter(f, HDR, batch_samples=batch)
        w.write(R.Thread(0, 1, 100, None, "main", 0))
        w.write(obj)
        t = 10**9
        expected = []
        for dt, which, ips, cut in samples:
            t += dt
            nid = w.native_stack_id(tuple(ips), cut) if which else 0
            w.native_sample(t, 0, 0, nid, True, False)
            expected.append((tuple(ips), cut) if which else None)
        w.close("duration")
    tr = load(p)
    assert len(tr) == len(samples)
    assert tr.native_objects == ({1: [obj]} if True else {})
    assert len(tr.native) == (len(samples) if samples else 0)
    for i, want in enumerate(expected):
        nid = tr.native[i]
        assert (tr.native_stacks[nid] if nid else None) == want


def test_eval_ends_go_with_their_native_stack(tmp_path):
    """The same addresses with another split of the Python stack are another native
    stack; one written without ends (before they were recorded) reads as having none."""
    p = tmp_path / "e.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, HDR)
        w.write(R.Thread(0, 1, 100, None, "main", 0))
        a = w.native_stack_id((1, 2, 3), False, (2, 4))
        b = w.native_stack_id((1, 2, 3), False, (1, 4))
        c = w.native_stack_id((1, 2, 3), False)
        assert len({a, b, c}) == 3 and w.native_stack_id((1, 2, 3), False, (2, 4)) == a
        for i, nid in enumerate((a, b, c)):
            w.native_sample(10**9 + i, 0, 0, nid, True, False)
        w.close("duration")
    tr = load(p)
    assert [tr.native_ends.get(n) for n in tr.native] == [(2, 4), (1, 4), None]
    assert tr.native_stacks[tr.native[0]] == ((1, 2, 3), False)


@pytest.mark.parametrize("ends", [[1, "x"], "12", [-1], [True]])
def test_bad_eval_ends_are_corruption(tmp_path, ends):
    body = [R.encode(HDR), [R.NATIVE_STACK, 1, [1, 2], False, ends]]
    with pytest.raises(TraceError, match="eval end"):
        load(_file(tmp_path, body))


def _file(tmp_path, body: list, minor: int = R.FORMAT_MINOR):
    p = tmp_path / "c.fkt"
    p.write_bytes(R.MAGIC + struct.pack("<HH", 1, minor) + b"".join(msgpack.packb(o) for o in body))
    return p


THREAD = R.encode(R.Thread(0, 1, 2, 3, "m", 0))
ONE_SAMPLE = [R.SAMPLES, b"\x05\x00\x00"]


@pytest.mark.parametrize(
    "body, words",
    [
        ([THREAD, [R.NATIVE_SAMPLES, b"\x00"]], "follow no samples"),
        ([THREAD, ONE_SAMPLE, [R.NATIVE_SAMPLES, b"\x00\x00"]], "2 native stack ids for 1 samples"),
        ([THREAD, ONE_SAMPLE, [R.NATIVE_SAMPLES, b"\x03"]], "undefined native stack 3"),
        ([THREAD, ONE_SAMPLE, [R.NATIVE_SAMPLES, b"\x80"]], "middle of a varint"),
        ([[R.NATIVE_STACK, 1, [1], False], [R.NATIVE_STACK, 1, [2], True]], "defined twice"),
        ([[R.NATIVE_STACK, 1, [1], "no"]], "cut must be a boolean"),
        ([[R.NATIVE_STACK, 0, [1], False]], "native stack id"),
        ([[R.NATIVE_OBJECT, 1, "/x", "id", 0, [], 0]], "build id"),
        ([[R.NATIVE_OBJECT, 1, "/x", None, 0, [[1, 2, 3]], 0]], "range"),
    ],
)
def test_native_corruption_names_the_problem(tmp_path, body, words):
    with pytest.raises(TraceError, match=words):
        load(_file(tmp_path, [R.encode(HDR), *body]))


def test_a_reader_of_1_2_reads_a_native_trace_as_its_python_stacks(tmp_path, monkeypatch):
    """A reader that predates 1.3 skips the three kinds (unknown kinds are skipped): the
    same samples, threads and stacks, no native ones."""
    p = tmp_path / "n.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, HDR, batch_samples=3)
        w.write(R.Thread(0, 1, 100, None, "main", 0))
        w.write(R.NativeObject(1, "/lib/x.so", None, 0, (), 0))
        for i in range(10):
            w.native_sample(10**9 + i, 0, 0, w.native_stack_id((i % 3 + 1,), False), True, False)
        w.close("duration")
    for kind in (R.NATIVE_OBJECT, R.NATIVE_STACK, R.NATIVE_SAMPLES):
        monkeypatch.delitem(R.DECODERS, kind)
    tr = load(p)
    assert len(tr) == 10 and not tr.truncated
    assert not tr.native and not tr.native_stacks and not tr.native_objects


def _plain(version: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    h = R.Header("t", 0, 10**9, 100.0, 1, mode={"pausing": True}, format_version=version)
    w = TraceWriter(out, h, batch_samples=16)
    w.write(R.Thread(0, 1, 100, None, "main", 0))
    for i in range(50):
        w.sample(10**9 + i, 0, 0, gil=True)
    w.close("duration", end_ns=10**9 + 50)
    return out.getvalue()


def test_without_native_nothing_is_added():
    """A recording without --native writes none of the new kinds and no mode flag: the
    same bytes as a 1.2 file but for the two version numbers (preamble and header)."""
    data, old = _plain((1, 3)), _plain((1, 2))
    kinds = [rec[0] for rec in msgpack.Unpacker(io.BytesIO(data[R.PREAMBLE_SIZE :]), raw=False)]
    assert kinds == [R.HEADER, R.THREAD] + [R.SAMPLES] * 4 + [R.END]
    assert b"native" not in data
    assert len(data) == len(old)
    assert [i for i, (a, b) in enumerate(zip(data, old)) if a != b] == [10] + [
        data.index(b"\x92\x01\x03") + 2
    ]

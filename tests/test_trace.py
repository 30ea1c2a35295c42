"""The FKT trace: round trips, truncation, corruption, compactness, forward compatibility."""

from __future__ import annotations

import io
import os
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate

from flamekit.errors import TraceError
from flamekit.trace import TraceReader, TraceWriter, load
from flamekit.trace import records as R
from flamekit.trace.synthetic import write_synthetic
from flamekit.trace.writer import preamble

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
#: a time since the recording's origin, anywhere in the format's range
times_ns = st.integers(0, R.MAX_TIME_NS - 1)
text = st.text(max_size=30)

headers = st.builds(
    R.Header,
    flamekit_version=text,
    start_wall_ns=st.integers(-R.MAX_TIME_NS, R.MAX_TIME_NS),
    start_monotonic_ns=st.integers(0, 2**62),
    rate_hz=st.just(0.0) | st.floats(R.MIN_RATE_HZ, 1e6),
    pid=u32,
    cmdline=st.lists(text, max_size=4).map(tuple),
    python_version=text,
    hostname=text,
    kernel=text,
    mode=st.dictionaries(text, st.booleans(), max_size=4),
)
threads = st.builds(
    R.Thread,
    ref=st.integers(0, 1000),
    pid=u32,
    native_tid=st.none() | u32,
    py_thread_id=st.none() | u64,
    name=st.none() | text,
    first_seen_ns=times_ns,
    ns_tid=st.none() | u32,
)
codes = st.builds(
    R.Code,
    ref=st.integers(0, 10**9),
    pid=u32,
    address=u64,
    name=text,
    qualname=st.none() | text,
    filename=text,
    firstlineno=st.integers(-(2**31), 2**31),
    linetable=st.binary(max_size=64),
    linetable_format=st.sampled_from([0, 1, 2, 3, 4]),
)
stacks = st.builds(
    R.Stack,
    id=st.integers(1, 10**9),
    frames=st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(-(2**31), 2**31)), max_size=20
    ).map(tuple),
)
procs = st.builds(
    R.Process,
    pid=u32,
    ppid=u32,
    cmdline=st.lists(text, max_size=3).map(tuple),
    first_seen_ns=times_ns,
    python_version=st.none() | text,
    start_ns=st.none() | st.integers(-R.MAX_TIME_NS, R.MAX_TIME_NS),
)
proc_ends = st.builds(
    R.ProcessEnd,
    pid=u32,
    end_ns=times_ns,
    how=st.sampled_from(R.PROCESS_ENDINGS),
    status=st.none() | st.integers(-(2**31), 2**31),
)
blobs = st.builds(R.Samples, blob=st.binary(max_size=64))
body = st.lists(st.one_of(threads, codes, stacks, procs, proc_ends, blobs), max_size=25)
ends = st.builds(
    R.End,
    reason=st.sampled_from(R.END_REASONS),
    error=st.none() | text,
    samples=u64,
    errors=u64,
    duration_ns=times_ns,
)


def write_records(recs: list[R.Record]) -> bytes:
    out = io.BytesIO()
    out.write(preamble())
    for r in recs:
        out.write(msgpack.packb(R.encode(r), use_bin_type=True))
    return out.getvalue()


def read_records(tmp_path, data: bytes, name: str = "t.fkt") -> tuple[list[R.Record], TraceReader]:
    p = tmp_path / name
    p.write_bytes(data)
    reader = TraceReader(p)
    return list(reader), reader


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers, body, st.none() | ends)
def test_any_record_sequence_reads_back_equal(tmp_path, header, recs, end):
    seq = [header, *recs] + ([end] if end else [])
    got, reader = read_records(tmp_path, write_records(seq))
    assert got == seq
    assert reader.truncated == (end is None)


# -- a real multi-record file ---------------------------------------------------------


def small_trace(tmp_path, **kw) -> bytes:
    p = tmp_path / "small.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, **{"samples": 300, "stacks": 12, "threads": 3, **kw})
    return p.read_bytes()


@given(
    samples=st.lists(
        st.tuples(
            st.integers(0, 10**10),
            st.integers(0, 3),
            st.booleans(),
            st.booleans(),
            st.integers(0, 5),
        ),
        max_size=300,
    )
)
@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_samples_round_trip_through_the_model(tmp_path, samples):
    """Each sample's own time, thread, flags and stack come back exactly."""
    p = tmp_path / "m.fkt"
    h = R.Header("t", 0, 10**9, 100.0, 1)
    with open(p, "wb") as f:
        w = TraceWriter(f, h, batch_samples=7)
        for t in range(4):
            w.write(R.Thread(t, 1, 100 + t, None, f"t{t}", 0))
        w.write(R.Code(1, 1, 0x1000, "f", None, "f.py", 1, b"", 0))
        sids = [0] + [w.stack_id(tuple((1, 2 * j) for j in range(k))) for k in range(1, 6)]
        t_ns = 10**9
        for dt, thread, gil, idle, s in samples:
            t_ns += dt
            w.sample(t_ns, thread, sids[s], gil=gil, idle=idle)
        w.close("duration")
    tr = load(p)
    assert not tr.truncated
    assert len(tr) == len(samples)
    acc = 0
    for i, (dt, thread, gil, idle, s) in enumerate(samples):
        acc += dt
        assert tr.times[i] == acc
        assert tr.columns.thread[i] == thread
        assert tr.is_gil(i) == gil and tr.is_idle(i) == idle
        assert tr.stacks.get(tr.columns.stack[i], ()) == tuple((1, 2 * j) for j in range(s))


def test_truncation_at_every_byte_gives_a_valid_prefix(tmp_path):
    data = small_trace(tmp_path, samples=120, stacks=8, threads=2)
    full = load(tmp_path / "small.fkt")
    assert not full.truncated and len(full) == 120
    header_end = R.PREAMBLE_SIZE + len(msgpack.packb(R.encode(full.header), use_bin_type=True))
    p = tmp_path / "cut.fkt"
    prev = 0
    counts = set()
    for cut in range(len(data)):
        p.write_bytes(data[:cut])
        if cut < header_end:
            with pytest.raises(TraceError):
                load(p)
            continue
        tr = load(p)
        assert tr.truncated, cut
        assert tr.truncation
        n = len(tr)
        assert n >= prev  # more bytes never recover fewer samples
        prev = n
        counts.add(n)
        assert list(tr.times) == list(full.times[:n])
        assert list(tr.columns.stack) == list(full.columns.stack[:n])
    assert prev == 120  # cut inside the end record: every sample is there
    assert len(counts) > 3  # earlier cuts recover shorter prefixes, batch by batch


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=400))
def test_random_bytes_give_a_trace_error_or_a_trace(data):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".fkt") as f:
        f.write(data)
        f.flush()
        try:
            load(f.name)
        except TraceError as exc:
            assert f.name in str(exc) and "\n" not in str(exc)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    return small_trace(tmp_path_factory.mktemp("v"), samples=60, stacks=6, threads=2)


@settings(max_examples=400, deadline=2000)
@given(st.data())
def test_mutated_valid_files_give_a_trace_error_or_a_trace(valid_bytes, data):
    import tempfile

    buf = bytearray(valid_bytes)
    mutate(data, buf, rounds=8, span=9)
    with tempfile.NamedTemporaryFile(suffix=".fkt") as f:
        f.write(bytes(buf))
        f.flush()
        try:
            load(f.name)
        except TraceError as exc:
            assert "\n" not in str(exc)


# -- hostile shapes -------------------------------------------------------------------

HDR = R.Header("t", 0, 0, 100.0, 1)


def raw_file(tmp_path, *objs, packed: bytes = b"") -> str:
    p = tmp_path / "h.fkt"
    p.write_bytes(preamble() + b"".join(msgpack.packb(o, use_bin_type=True) for o in objs) + packed)
    return str(p)


@pytest.mark.parametrize(
    "packed",
    [
        b"\xdb\xff\xff\xff\xff",  # str of 4 GiB claimed
        b"\xc6\x7f\xff\xff\xff",  # bin of 2 GiB claimed
        b"\xdd\xff\xff\xff\xff",  # array of 4 G elements claimed
        b"\x91" * 5000 + b"\x00",  # nested 5000 deep
    ],
)
def test_huge_lengths_and_deep_nesting_are_refused_or_cut(tmp_path, packed):
    """A claimed length is never allocated: the record is refused, or the file reads as cut."""
    path = raw_file(tmp_path, R.encode(HDR), packed=packed)
    try:
        tr = load(path)
    except TraceError as exc:
        assert "corrupt" in str(exc)
    else:
        assert tr.truncated and len(tr) == 0


def test_a_record_larger_than_the_cap_is_refused(tmp_path):
    """Data behind a huge claimed length stops at the buffer cap instead of growing memory."""
    path = raw_file(tmp_path, R.encode(HDR), packed=b"\xc6\x7f\xff\xff\xff" + b"\0" * (40 << 20))
    with pytest.raises(TraceError, match="larger than"):
        load(path)


@pytest.mark.parametrize(
    "objs, words",
    [
        ([[R.SAMPLES, b"\x01\x00\x05"]], "undefined stack 5"),
        ([[R.SAMPLES, b"\x01\x1c\x00"]], "undefined thread 7"),
        ([[R.THREAD, 0, 1, 1, 1, "m", 0], [R.STACK, 1, [9, 0]]], "undefined code 9"),
        ([[R.CODE, 1, 1, 1, "f", None, "f.py", 1, b"", 0]] * 2, "code ref 1 defined twice"),
        ([[R.THREAD, 0, 1, 1, 1, "m", 0], [R.SAMPLES, b"\x80"]], "middle of a sample"),
        ([[R.THREAD, 0, 1, 1, 1, "m", 0], [R.SAMPLES, b"\xff" * 12 + b"\x00\x00\x00"]], "varint"),
        ([[R.THREAD, "x", 1, 1, 1, "m", 0]], "thread ref must be an integer"),
        ([[R.THREAD, -1, 1, 1, 1, "m", 0]], "thread ref must be an integer"),
        ([[R.END, "duration", None, 0, 0, 0], [R.THREAD, 0, 1, 1, 1, "m", 0]], "after the end"),
        ([R.encode(HDR)], "second header"),
        (["not a record"], "non-empty array"),
        ([[R.CODE, 1, 1, 1, "f", None, "f.py", 1, "not bytes", 0]], "must be bytes"),
    ],
)
def test_structural_corruption_names_the_problem(tmp_path, objs, words):
    path = raw_file(tmp_path, R.encode(HDR), *objs)
    with pytest.raises(TraceError, match=words):
        load(path)


def test_invalid_utf8_and_nan_times_are_refused(tmp_path):
    bad_utf8 = msgpack.packb([R.THREAD, 0, 1, 1, 1, "m", 0], use_bin_type=True).replace(
        b"\xa1m", b"\xa1\xff"
    )
    with pytest.raises(TraceError, match="corrupt"):
        load(raw_file(tmp_path, R.encode(HDR), packed=bad_utf8))
    hdr = R.encode(HDR)
    hdr[1]["rate_hz"] = float("nan")
    with pytest.raises(TraceError, match="rate_hz"):
        load(raw_file(tmp_path, hdr))


def test_not_fkt_empty_and_newer_major_are_refused(tmp_path):
    p = tmp_path / "x.fkt"
    p.write_bytes(b"")
    with pytest.raises(TraceError, match="empty file"):
        load(p)
    p.write_bytes(b'{"nodes": []}')
    with pytest.raises(TraceError, match="not an FKT trace"):
        load(p)
    p.write_bytes(R.MAGIC + struct.pack("<HH", 2, 0) + msgpack.packb(R.encode(HDR)))
    with pytest.raises(TraceError, match="newer flamekit"):
        load(p)
    with pytest.raises(TraceError, match="is a directory"):
        load(tmp_path)
    with pytest.raises(TraceError, match="no such file"):
        load(tmp_path / "missing.fkt")


def test_unknown_kinds_and_extra_fields_are_skipped(tmp_path):
    """A newer minor version may add record kinds and trailing fields: older readers skip them."""
    p = tmp_path / "newer.fkt"
    body = [
        R.encode(HDR),
        [99, "future", {"x": 1}],
        R.encode(R.Thread(0, 1, 2, 3, "m", 0, ns_tid=5)) + ["extra"],
        [R.SAMPLES, b"\x05\x00\x00", "future-field"],
        R.encode(R.End("duration", None, 1, 0, 5)),
    ]
    p.write_bytes(R.MAGIC + struct.pack("<HH", 1, 7) + b"".join(msgpack.packb(o) for o in body))
    tr = load(p)
    assert len(tr) == 1 and tr.threads[0].name == "m" and not tr.truncated
    assert tr.threads[0].ns_tid == 5


def test_a_thread_without_a_namespace_id_is_written_as_in_1_1(tmp_path):
    """ns_tid (1.2) is a trailing field written only where it says something: a thread
    whose ids agree is the seven fields 1.0 and 1.1 readers know, and a 1.1 file's
    threads read back without one."""
    assert R.encode(R.Thread(0, 1, 2, 3, "m", 0)) == [R.THREAD, 0, 1, 2, 3, "m", 0]
    assert R.encode(R.Thread(0, 1, 2, 3, "m", 0, ns_tid=7)) == [R.THREAD, 0, 1, 2, 3, "m", 0, 7]
    p = tmp_path / "old.fkt"
    body = [R.encode(HDR), [R.THREAD, 0, 1, 2, 3, "m", 0], [R.THREAD, 1, 1, 4, 5, "n", 0, 9]]
    p.write_bytes(R.MAGIC + struct.pack("<HH", 1, 1) + b"".join(msgpack.packb(o) for o in body))
    tr = load(p)
    assert tr.threads[0].ns_tid is None and tr.threads[1].ns_tid == 9


# -- compactness ----------------------------------------------------------------------


@pytest.mark.parametrize("rate, threads", [(100.0, 1), (1000.0, 1), (1000.0, 4)])
def test_steady_workload_costs_at_most_8_bytes_per_sample(tmp_path, rate, threads):
    p = tmp_path / "steady.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=20000, stacks=300, threads=threads, depth=30, rate_hz=rate)
    tr = load(p)
    per_sample = os.path.getsize(p) / len(tr)
    assert per_sample <= 8.0, per_sample
    assert len(set(tr.times)) >= len(tr) // threads  # every sample kept its own time


def test_interned_stacks_share_their_frames(tmp_path):
    """A recorder keeps every stack it wrote (to intern it); a churning, recursive target
    makes thousands of long stacks out of a few frames. Those frames must be stored once:
    2,000 stacks of ~200 frames took 60 MB with a copy per stack, a few MB shared."""
    import random
    import tracemalloc

    rng = random.Random(0)
    out = io.BytesIO()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        w = TraceWriter(out, R.Header("t", 0, 0, 1000.0, 1))
        for i in range(2000):
            depth = rng.randrange(100, 300)
            frames = tuple((300 + k % 3, 1000 + 2 * (k % 3)) for k in range(depth))
            w.stack_id(((5000 + i, 7000 + i), *frames))
        held = tracemalloc.get_traced_memory()[0] - before - len(out.getvalue())
    finally:
        tracemalloc.stop()
    assert held < 8 << 20, f"{held / 1e6:.1f} MB for 2,000 interned stacks"
    w.close("duration")
    path = tmp_path / "s.fkt"
    path.write_bytes(out.getvalue())
    stacks = {s.id: s.frames for s in TraceReader(path) if isinstance(s, R.Stack)}
    assert len(stacks) == 2000 and all(len(f) >= 101 for f in stacks.values())


def test_process_runs_and_the_threads_in_them(tmp_path):
    """A process tree: runs start at PROCESS records and end at PROCESS_END; a thread
    belongs to its pid's current run when it is first named. An exec makes a new run of
    the same pid, so does a pid that comes back; a thread of a pid never named gets one."""
    from flamekit.trace import TraceWriter, load

    path = tmp_path / "tree.fkt"
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("0.1.0", 0, 0, 100.0, 10))
        w.write(R.Process(10, 1, ("python", "master.py"), 0, "3.12.1", -5))
        w.write(R.Thread(0, 10, 10, 1, "MainThread", 0))
        w.write(R.Process(11, 10, ("sh", "-c", "x"), 5, None, 4))  # watched, not recorded
        w.write(R.ProcessEnd(11, 6, "exec"))
        w.write(R.Process(11, 10, ("python3.8", "x.py"), 6, "3.8.18", 4))
        w.write(R.Thread(1, 11, 11, 1, "MainThread", 7))
        w.write(R.ProcessEnd(11, 9, "exited", 0))
        w.write(R.Process(11, 10, ("python", "again.py"), 10, "3.12.1", 10))  # pid reused
        w.write(R.Thread(2, 11, 11, 1, None, 11))
        w.write(R.Thread(1, 11, 11, 1, "renamed", 7))  # a rename keeps its run
        w.write(R.Thread(3, 12, 12, 1, None, 12))  # a pid never named
        for ref in range(4):
            w.sample(20 + ref, ref, 0)
        w.close("duration")
    tr = load(path)
    assert [(r.pid, r.process.python_version, r.end and r.end.how) for r in tr.runs] == [
        (10, "3.12.1", None),
        (11, None, "exec"),
        (11, "3.8.18", "exited"),
        (11, "3.12.1", None),
        (12, None, None),
    ]
    assert tr.thread_runs == {0: 0, 1: 2, 2: 3, 3: 4}
    assert tr.run_of(1).process.cmdline == ("python3.8", "x.py")
    assert tr.run_of(1).end == R.ProcessEnd(11, 9, "exited", 0)
    assert tr.runs[0].label() == "process 10: python master.py"
    assert tr.processes[11].cmdline == ("python", "again.py")  # the latest, by pid


def test_a_process_end_without_its_start_is_corrupt(tmp_path):
    from flamekit.trace import TraceWriter, load

    path = tmp_path / "bad.fkt"
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("0.1.0", 0, 0, 100.0, 10))
        w.write(R.ProcessEnd(99, 1, "exited", 0))
        w.close("duration")
    with pytest.raises(TraceError, match="process 99 ends without having started"):
        load(path)

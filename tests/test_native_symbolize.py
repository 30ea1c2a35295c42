"""Offline native frames: names from the objects' symbol tables, ``module+0xOFFSET`` when
an object is missing or is another build (never a wrong name), and the merge of native
and Python stacks (each evaluation frame replaced by the Python frames it ran, in order)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.analysis.native import EVAL_FRAMES, eval_frames, merge
from flamekit.symbolize.native import NativeName, NativeSymbolizer, ObjectFinder, SymbolTable
from flamekit.trace import records as R

EVAL = "_PyEval_EvalFrameDefault"
SRC = (
    "int flamekit_alpha(int x) { return x * 3 + 1; }\nint flamekit_beta(int x) { return x - 7; }\n"
)


@pytest.fixture(scope="module")
def shared_object(tmp_path_factory) -> Path:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    d = tmp_path_factory.mktemp("so")
    (d / "t.c").write_text(SRC)
    out = d / "libt.so"
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-Wl,--build-id", str(d / "t.c"), "-o",
                    str(out)], check=True)  # fmt: skip
    return out


def _obj(path: str, build_id: bytes | None, bias: int = 0x7F0000000000) -> R.NativeObject:
    return R.NativeObject(1, path, build_id, bias, ((bias, bias + 0x10000, 0, "r-xp"),), 0)


def test_names_come_from_the_symbol_table_and_offsets_otherwise(shared_object):
    table, bid = SymbolTable.read(str(shared_object))
    assert bid
    start = dict((n, s) for s, _, n in table.rows)["flamekit_beta"]
    obj = _obj(str(shared_object), bid)
    sym = NativeSymbolizer({1: [obj]}, ObjectFinder())
    assert sym.name(1, obj.bias + start, False) == NativeName("flamekit_beta", obj.path, True)
    # a return address just past a call belongs to the call: looked up one byte back
    assert sym.name(1, obj.bias + start + 1, True).name == "flamekit_beta"
    # another build of the "same" object, or no object: module+offset, never its names
    for other in (_obj(str(shared_object), b"\x00" * 20), _obj("/nonexistent/libt.so", bid)):
        got = NativeSymbolizer({1: [other]}, ObjectFinder()).name(1, other.bias + start, False)
        assert got == NativeName(f"libt.so+0x{start:x}", other.path, False)
    # an address in no object recorded
    assert NativeSymbolizer({1: [obj]}, ObjectFinder()).name(1, 0x1000, False).name == "0x1000"


def test_an_object_is_found_by_build_id_in_a_debug_dir(shared_object, tmp_path):
    _, bid = SymbolTable.read(str(shared_object))
    h = bid.hex()
    where = tmp_path / ".build-id" / h[:2]
    where.mkdir(parents=True)
    shutil.copy(shared_object, where / f"{h[2:]}.debug")
    obj = _obj("/elsewhere/libt.so", bid)  # the recorded path does not exist here
    assert ObjectFinder([str(tmp_path)]).table(obj) is not None
    assert ObjectFinder([]).table(obj) is None


def test_eval_frames_are_a_table_by_version():
    assert eval_frames("3.9.18") == (frozenset({EVAL}), False)
    assert eval_frames("3.12.1") == (frozenset({EVAL}), True)
    assert eval_frames("2.7.18")[0] == {"PyEval_EvalFrameEx"}
    assert eval_frames("3.99.0") == EVAL_FRAMES[max(EVAL_FRAMES)]


def _n(name: str) -> NativeName:
    return NativeName(name, "/lib/x.so", True)


natives = st.lists(st.sampled_from([EVAL, "f", "g", "h"]), max_size=12)


@given(natives, st.integers(0, 12), st.booleans())
def test_merge_keeps_every_python_frame_in_order(names, n_py, inlined):
    """Whatever the counts: every Python frame once, in their order; every native frame
    that is not an evaluation frame once, in its order; an evaluation frame stays only
    where no Python frame was left for it."""
    py = tuple((k, 0) for k in range(n_py))  # innermost first
    nat = [_n(x) for x in names]  # innermost first
    out = merge(py, nat, frozenset({EVAL}), inlined)
    got_py = [f for f in out if not isinstance(f, NativeName)]
    assert got_py == list(reversed(py))
    got_nat = [f.name for f in out if isinstance(f, NativeName) and f.name != EVAL]
    assert got_nat == [x for x in reversed(names) if x != EVAL]
    evals = names.count(EVAL)
    if n_py >= evals:
        assert all(f.name != EVAL for f in out if isinstance(f, NativeName))


def test_a_c_function_lands_between_its_caller_and_its_callback():
    """3.12 (inlined): <module> and caller in the outer evaluation call, callback in the
    inner one, the C function between them."""
    py = ((3, 0), (2, 0), (1, 0))  # callback, caller, <module>: innermost first
    nat = [_n(EVAL), _n("PyObject_CallObject"), _n("spin_in_c"), _n("cfunction_call"),
           _n(EVAL), _n("PyEval_EvalCode"), _n("main")]  # fmt: skip
    out = merge(py, nat, frozenset({EVAL}), True)
    assert [f.name if isinstance(f, NativeName) else f[0] for f in out] == [
        "main",
        "PyEval_EvalCode",
        1,
        2,
        "cfunction_call",
        "spin_in_c",
        "PyObject_CallObject",
        3,
    ]


def test_up_to_3_10_a_call_caught_before_its_frame_keeps_none():
    """3.8 (one frame per call), the callback's call of another caught entering it (or
    leaving it): the call is on the native stack, its frame not yet linked (not walked).
    The callback stays above the C function, the empty call on top."""
    py = ((3, 0), (2, 0), (1, 0))  # callback, caller, <module>: innermost first
    nat = [_n(EVAL), _n(EVAL), _n("spin_in_c"), _n(EVAL), _n(EVAL), _n("main")]
    out = merge(py, nat, frozenset({EVAL}), False)
    assert [f.name if isinstance(f, NativeName) else f[0] for f in out] == [
        "main", 1, 2, "spin_in_c", 3, EVAL,
    ]  # fmt: skip


@given(st.lists(st.integers(0, 2), min_size=1, max_size=6), st.integers(0, 2))
def test_up_to_3_10_an_innermost_call_without_its_frame_changes_nothing_below(gaps, leaf):
    """One frame per call, C between calls: the stack caught in a call whose frame is
    not linked yet (or any more) merges as the stack without that call, plus the call
    and what it runs on top."""
    py = tuple((k, 0) for k in range(len(gaps)))  # innermost first
    nat: list[NativeName] = []
    for k, gap in enumerate(gaps):
        nat += [_n(EVAL)] + [_n(f"c{k}")] * gap
    settled = merge(py, nat, frozenset({EVAL}), False)
    entering = [_n("leaf")] * leaf + [_n(EVAL)]
    got = merge(py, entering + nat, frozenset({EVAL}), False)
    assert got == [*settled, *reversed(entering)]


@st.composite
def split_stacks(draw):
    """A 3.11+ thread by hand: evaluation calls of random sizes (0 frames: one caught
    before its first), innermost first, each entered from C; its Python frames named by
    (call, position), its native stack with C frames between the calls, cut short or not,
    and the recorded ends."""
    sizes = draw(st.lists(st.integers(0, 5), min_size=1, max_size=6))
    py = tuple((k, j) for k, n in enumerate(sizes) for j in range(n))  # innermost first
    nat: list[NativeName] = [_n("leaf")] * draw(st.integers(0, 2))
    for k in range(len(sizes)):
        nat.append(_n(EVAL))
        nat += [_n(f"c{k}")] * draw(st.integers(0, 2))  # what called the call from C
    reached = draw(st.integers(1, len(sizes)))  # evaluation calls the unwind reached
    cut = [i for i, n in enumerate(nat) if n.name == EVAL][reached - 1] + 1
    ends = []
    for n in sizes:
        ends.append((ends[-1] if ends else 0) + n)
    return py, sizes, nat[:cut], reached, tuple(ends)


@given(split_stacks(), st.booleans())
def test_merge_gives_each_evaluation_call_its_own_frames(stack, last_end_read):
    """With the recorded ends, every Python frame goes where its own call's evaluation
    frame was, innermost call first; the frames of calls the native stack does not reach
    go at the root; the C frames keep their places. Frames past the last end read form
    one more call (a walker need not report the outermost end)."""
    py, sizes, nat, reached, ends = stack
    out = merge(py, nat, frozenset({EVAL}), True, ends if last_end_read else ends[:-1])
    # root first: unreached calls' frames, then per reached call (outermost first) its
    # C caller frames above it... read back which call each Python frame sits under
    names = [f.name if isinstance(f, NativeName) else f for f in out]
    unreached = [f for f in reversed(py) if f[0] >= reached]
    assert names[: len(unreached)] == unreached
    rest = names[len(unreached) :]
    expect: list = []
    for k in range(len(sizes) - 1, -1, -1):
        if k < reached:
            frames = [(k, j) for j in range(sizes[k] - 1, -1, -1)]
            expect += frames or [EVAL]  # an empty call keeps its evaluation frame
        if k and k - 1 < reached:
            expect += [f"c{k - 1}"] * sum(1 for n in nat if n.name == f"c{k - 1}")
    expect += ["leaf"] * sum(1 for n in nat if n.name == "leaf")
    assert rest == expect


def test_an_evaluation_call_entered_before_its_frame_gets_no_python_frame():
    """3.11+: the thread stopped inside the callback's evaluation call before its entry
    frame was linked, so the walker read one call (<module>, caller) and the native
    stack holds two evaluation frames. The callers' frames stay with the outer call,
    above the C function; the inner evaluation frame shows as itself (on 3.13, 1 sample
    of ~900 merged as ``C → <module> → caller`` before)."""
    py = ((1, 0), (0, 0))  # caller, <module>: innermost first
    nat = [_n(EVAL), _n("c"), _n(EVAL), _n("main")]
    out = merge(py, nat, frozenset({EVAL}), True, (2,))
    names = [f.name if isinstance(f, NativeName) else f for f in out]
    assert names == ["main", (0, 0), (1, 0), "c", EVAL]


def test_ends_that_do_not_fit_the_stack_fall_back_to_the_guess():
    py = ((2, 0), (1, 0), (0, 0))
    nat = [_n(EVAL), _n("c"), _n(EVAL)]
    guess = merge(py, nat, frozenset({EVAL}), True)
    assert merge(py, nat, frozenset({EVAL}), True, (2, 9)) == guess
    assert merge(py, nat, frozenset({EVAL}), True, (2, 1)) == guess
    assert merge(py, nat, frozenset({EVAL}), True, (2, 3)) != guess


# -- every output format marks native frames -------------------------------------------


def native_trace(tmp_path: Path, shared_object: Path) -> Path:
    """A --native trace by hand: <module> -> caller (Python) -> flamekit_beta (C, in the
    test-built libt.so) -> _PyEval_EvalFrameDefault running callback (Python), and a
    frame in an object that is not on this machine."""
    from flamekit.trace import TraceWriter

    table, bid = SymbolTable.read(str(shared_object))
    starts = {n: s for s, _, n in table.rows}
    bias = 0x7F0000000000
    lib = R.NativeObject(1, str(shared_object), bid, bias, ((bias, bias + 0x10000, 0, "r-xp"),), 0)
    py = 0x7E0000000000
    interp = R.NativeObject(1, "/gone/libpython3.12.so", b"\x01" * 20, py,
                            ((py, py + 0x100000, 0, "r-xp"),), 0)  # fmt: skip
    p = tmp_path / "native.fkt"
    h = R.Header("t", 0, 10**9, 100.0, 1, python_version="3.9.1", mode={"native": True})
    with open(p, "wb") as f:
        w = TraceWriter(f, h)
        w.write(R.Process(1, 0, ("python", "app.py"), 0, "3.9.1"))
        w.write(R.Thread(0, 1, 1, 1, "main", 0))
        for ref, name in ((1, "<module>"), (2, "caller"), (3, "callback")):
            w.write(R.Code(ref, 1, 0x1000 * ref, name, None, "app.py", ref, b"", 0))
        w.write(lib)
        w.write(interp)
        sid = w.stack_id(((3, 0), (2, 0), (1, 0)))
        # innermost first: eval(callback), flamekit_beta, eval(caller), eval(<module>);
        # the eval frames lie in the missing libpython: so say the symbols of a 3.9 one
        ips = (py + 0x10, bias + starts["flamekit_beta"] + 2, py + 0x10, py + 0x10)
        nid = w.native_stack_id(ips, False)
        for i in range(10):
            w.native_sample(10**9 + i * 10**7, 0, sid, nid, True, False)
        w.close("duration")
    return p


def test_native_frames_are_marked_in_every_format(tmp_path, shared_object, monkeypatch):

    import json

    from readers import profile_pb

    from flamekit import api
    from flamekit.symbolize import native as native_mod

    p = native_trace(tmp_path, shared_object)
    # the missing libpython's eval function, as its symbols would name it
    real = native_mod.NativeSymbolizer.name

    def name(self, pid, address, is_return):
        if address == 0x7E0000000010:
            return NativeName(EVAL, "/gone/libpython3.12.so", True)
        return real(self, pid, address, is_return)

    monkeypatch.setattr(native_mod.NativeSymbolizer, "name", name)
    prof = api.open(p).profile()
    out = {}
    for fmt in ("collapsed", "speedscope", "pprof", "cpuprofile", "svg"):
        target = tmp_path / f"o.{fmt}"
        prof.write(fmt, str(target))
        out[fmt] = target.read_bytes()
    folded = out["collapsed"].decode()
    assert folded.strip() == (
        "<module> (app.py:1);caller (app.py:2);flamekit_beta [libt.so];callback (app.py:3) 10"
    )
    doc = json.loads(out["speedscope"])
    files = {f["name"]: f.get("file") for f in doc["shared"]["frames"]}
    assert files["flamekit_beta"] == str(shared_object)
    assert files["caller"] == "app.py"
    msg = profile_pb.parse(out["pprof"])
    s = msg.string_table
    maps = {m.id: s[m.filename] for m in msg.mapping}
    funcs = {f.id: s[f.name] for f in msg.function}
    where = {funcs[loc.line[0].function_id]: maps[loc.mapping_id] for loc in msg.location}
    assert where["flamekit_beta"] == str(shared_object)
    assert where["caller"] != str(shared_object)
    nodes = json.loads(out["cpuprofile"])["nodes"]
    urls = {n["callFrame"]["functionName"]: n["callFrame"]["url"] for n in nodes}
    assert urls["flamekit_beta"] == str(shared_object)
    assert b"flamekit_beta [libt.so]" in out["svg"]


# -- the unwinder's CFA expressions (PLT stubs) -----------------------------------------

#: binutils' x86-64 PLT rule: rsp + 8 + ((rip & 15) >= 11) << 3 (after the stub's push)
PLT_EXPRESSION = [0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22]


@given(st.integers(0, 2**47), st.integers(0, 2**47))
def test_the_plt_expression_evaluates_as_binutils_means_it(rsp, rip):
    from flamekit.record.proc.cfi import compile_expression
    from flamekit.record.proc.unwind import evaluate

    expr = compile_expression(PLT_EXPRESSION)
    assert expr is not None
    assert evaluate(expr, {7: rsp, 6: 0, 16: rip}) == rsp + 8 + (8 if rip & 15 >= 11 else 0)


@given(st.integers(32, 2**47), st.integers(0, 2**64 - 1))
def test_a_realigned_frames_cfa_is_read_through_rbp(rbp, word):
    """GCC's frames realigned for AVX say CFA = *(rbp - 24) (DW_OP_breg6 -24; DW_OP_deref)
    and rbp saved at rbp + 0 (an address expression, the CFA pushed first): both
    evaluate, reading the stack where they point."""
    from flamekit.record.proc.cfi import compile_expression
    from flamekit.record.proc.unwind import evaluate

    cfa = compile_expression([0x76, 0x68, 0x06])  # breg6 -24 (sleb 0x68); deref
    assert cfa is not None
    memory = {rbp - 24: word}
    assert evaluate(cfa, {6: rbp}, memory.get) == word
    assert evaluate(cfa, {6: rbp}, {}.get) is None  # unreadable: cut, not guessed
    assert evaluate(cfa, {6: rbp}) is None  # no reader: a dereference cannot evaluate
    saved_at = compile_expression([0x76, 0x00])  # breg6 0
    assert saved_at is not None
    assert evaluate(saved_at, {6: rbp}, None, push=word) == rbp


def test_other_expressions_are_not_evaluated():
    """An operation outside the few the unwinder takes (DW_OP_call_frame_cfa, a missing
    operand) is no rule: the unwinder cuts the stack there rather than guess."""
    from flamekit.record.proc.cfi import compile_expression
    from flamekit.record.proc.unwind import evaluate

    assert compile_expression([0x9C]) is None  # DW_OP_call_frame_cfa
    assert compile_expression([0x77]) is None  # operand missing
    assert evaluate(((0x22, 0),), {}) is None  # plus on an empty stack
    assert evaluate(((0x73, 0),), {7: 1}) is None  # rbx: a register not tracked

"""The out-of-process stack walker against every real interpreter on this machine.

Each interpreter runs tests/targets/walk_target.py, which parks threads at known places
(a sleeper three calls deep, a GIL-holding spinner, non-ASCII function and file names,
a 500-deep recursion) and prints its thread ids when ready. The walker must find exactly
those stacks: names, files, first lines, line numbers (through flamekit.symbolize), the
GIL holder and the kernel tids, without any help from the target.

A missing interpreter is a failure (tests/pythons.py raises), never a skip.

Run ``python tests/test_record_walker.py --bench`` for microseconds per walk.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flamekit.errors import TargetError
from flamekit.record.code_reader import CodeReader
from flamekit.record.code_refs import CodeRefs
from flamekit.record.layout import (
    GIL_UNKNOWN,
    layout_for_release,
    layout_from_table,
    without_gil,
)
from flamekit.record.proc.elf import ElfImage
from flamekit.record.proc.memory import ProcessGoneError, ProcessMemory, ReadError
from flamekit.record.target import PythonTarget, open_target
from flamekit.record.walk import CYCLE_CHECK, StackWalker, ThreadStack
from flamekit.symbolize import line_for_offset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pythons import Interpreter, pyenv_root, recordable  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET = HERE / "targets" / "walk_target.py"
UNICODE_MODULE = HERE / "targets" / "módulo_函数.py"
ROOT = HERE.parent


def legacy() -> list[Interpreter]:
    """pyenv's 2.7, 3.6 and 3.7 (state anchored differently: interp_head, no _PyRuntime
    in 3.6 and 2.7). Missing ones fail: any CPython on this machine must be recordable."""
    versions = pyenv_root() / "versions"
    out = []
    for major, minor in ((2, 7), (3, 6), (3, 7)):
        found = sorted(versions.glob(f"{major}.{minor}.*/bin/python{major}.{minor}"))
        if not found:
            raise RuntimeError(f"CPython {major}.{minor} is missing from {versions}")
        out.append(Interpreter(f"{major}.{minor}", str(found[-1]), (major, minor)))
    return out


INTERPRETERS = legacy() + recordable()


def threading_tail(interp: Interpreter) -> list[str]:
    if interp.version < (3, 0):
        return ["run", "__bootstrap_inner", "__bootstrap"]
    return ["run", "_bootstrap_inner", "_bootstrap"]


def marks(path: Path) -> dict[str, int]:
    """{'MARK name': line} and {'def name': line} for a target source file."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"# MARK:(\S+)", line)
        if m:
            out[m.group(1)] = n
        m = re.match(r"def (\w+)\(", line)
        if m:
            out["def " + m.group(1)] = n
    return out


TARGET_LINES = marks(TARGET)
UNICODE_LINES = marks(UNICODE_MODULE)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"target did not get ready (exit {proc.poll()}): {err}")


def start(interp: Interpreter, *args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [interp.path, str(TARGET), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        return proc, json.loads(read_line(proc, 30))
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f:
            f.close()


@dataclass
class Running:
    interp: Interpreter
    proc: subprocess.Popen
    info: dict
    target: PythonTarget
    reader: CodeReader
    stacks: dict[str, ThreadStack]  #: by thread name ("main", "sleeper", ...)

    def names(self, stack: ThreadStack) -> list[str]:
        return [self.reader.read_code(c).name for c, _ in stack.frames]


def settled_walk(target: PythonTarget, info: dict, tries: int = 50) -> dict[str, ThreadStack]:
    """Walk until every parked thread shows its expected leaf (they may still be on the way)."""
    reader = CodeReader(target)
    idents = {"main": info["main"], **{k: v[0] for k, v in info["threads"].items()}}
    for name in [n for n in EXPECTED if n not in idents]:
        assert name == "unicode" and target.version < (3, 0)
    leaves = {
        "main": "main_idle",
        "sleeper": "level3",
        "unicode": "𠀀_ucs4",
        "deep": "recurse",
        "spinner": "spin",
    }
    walker = StackWalker(target)
    last = None
    for _ in range(tries):
        by_id = {t.thread_id: t for t in walker.walk()}
        last = by_id
        named = {name: by_id.get(ident) for name, ident in idents.items()}
        if (
            all(
                t is not None and t.frames and reader.read_code(t.frames[0][0]).name == leaves[n]
                for n, t in named.items()
            )
            and len(named["deep"].frames) >= 500
        ):  # type: ignore[union-attr]
            return named  # type: ignore[return-value]
        time.sleep(0.05)
    raise AssertionError(f"threads never settled: {last}")


@pytest.fixture(scope="module", params=INTERPRETERS, ids=str)
def running(request: pytest.FixtureRequest):
    interp: Interpreter = request.param
    proc, info = start(interp)
    target = open_target(proc.pid)
    try:
        stacks = settled_walk(target, info)
        yield Running(interp, proc, info, target, CodeReader(target), stacks)
    finally:
        target.close()
        stop(proc)


# -- attaching ------------------------------------------------------------------------


def test_version_and_layout(running: Running) -> None:
    t = running.target
    assert t.version[:2] == running.interp.version
    assert t.layout.version == running.interp.version
    if t.version >= (3, 13):
        assert t.layout.source.startswith("_Py_DebugOffsets")
    else:
        assert t.layout.source.startswith("CPython")
    if running.interp.id.startswith("3.") and running.interp.version < (3, 14):
        # pyenv builds: the micro version comes from Py_Version or the PY_VERSION string.
        assert running.interp.path.split("/versions/")[1].startswith(t.version_string)


def test_debug_offsets_agree_with_generated_table(running: Running) -> None:
    """On 3.13 the live _Py_DebugOffsets and the offsetof() table must say the same."""
    if running.interp.version != (3, 13):
        return
    live = running.target.layout
    table = layout_from_table((3, 13))
    for f in fields(live):
        if f.name != "source":
            assert getattr(live, f.name) == getattr(table, f.name), f.name


# -- stacks ---------------------------------------------------------------------------


def test_every_thread_found(running: Running) -> None:
    walked = StackWalker(running.target).walk()
    ids = {t.thread_id for t in walked}
    expected = {running.info["main"], *(v[0] for v in running.info["threads"].values())}
    assert ids == expected
    assert all(t.error is None and not t.truncated for t in walked)


EXPECTED = {
    "main": ["main_idle", "main", "<module>"],
    "sleeper": ["level3", "level2", "level1", "TAIL"],
    "unicode": ["𠀀_ucs4", "函数_cjk", "fé_latin", "TAIL"],
    "spinner": ["spin", "TAIL"],
    "deep": ["recurse"] * 500 + ["TAIL"],
}


def expected(interp: Interpreter, name: str) -> list[str]:
    names = EXPECTED[name]
    if names[-1] == "TAIL":
        return names[:-1] + threading_tail(interp)
    return names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stack_names_files_and_first_lines(running: Running, name: str) -> None:
    if name not in running.stacks:
        assert name == "unicode" and running.interp.version < (3, 0)
        return
    stack = running.stacks[name]
    codes = [running.reader.read_code(c) for c, _ in stack.frames]
    tail = threading_tail(running.interp)
    assert [c.name for c in codes] == expected(running.interp, name)
    for c in codes:
        if c.name in tail:
            assert c.filename.endswith("threading.py")
            source = Path(c.filename).read_text(encoding="utf-8").splitlines()
            assert source[c.firstlineno - 1].lstrip().startswith(f"def {c.name}(")
        elif c.name == "<module>":
            assert c.filename == str(TARGET)
            # 3.10+ say 1; older versions the docstring's or the first statement's line.
            first_statement = TARGET_LINES["first-statement"]
            assert 1 <= c.firstlineno <= first_statement
        elif name == "unicode":
            assert c.filename == str(UNICODE_MODULE)
            assert c.firstlineno == UNICODE_LINES["def " + c.name]
        else:
            assert c.filename == str(TARGET)
            assert c.firstlineno == TARGET_LINES["def " + c.name]
        if running.interp.version >= (3, 11):
            expected_qual = f"Thread.{c.name}" if c.name in tail else c.name
            assert c.qualname == expected_qual
        else:
            assert c.qualname is None


def lines_of(running: Running, stack: ThreadStack) -> list[int | None]:
    out = []
    for code, offset in stack.frames:
        c = running.reader.read_code(code)
        out.append(line_for_offset(c.linetable, c.linetable_format, c.firstlineno, offset))
    return out


def test_line_numbers(running: Running) -> None:
    L, U = TARGET_LINES, UNICODE_LINES
    s = running.stacks
    assert lines_of(running, s["main"])[0] == L["main-wait"]
    assert lines_of(running, s["sleeper"])[:3] == [
        L["sleeper-sleep"],
        L["def level2"] + 1,
        L["def level1"] + 1,
    ]
    if "unicode" in s:
        assert lines_of(running, s["unicode"])[:3] == [
            U["ucs4-sleep"],
            U["def 函数_cjk"] + 1,
            U["def fé_latin"] + 1,
        ]
    deep = lines_of(running, s["deep"])
    assert deep[0] == L["recurse-sleep"]
    assert deep[1:500] == [L["recurse-call"]] * 499
    assert lines_of(running, s["spinner"])[0] in (L["spin-loop"], L["spin-body"])
    for stack in s.values():
        assert None not in lines_of(running, stack)


def test_offsets_follow_the_convention(running: Running) -> None:
    """Byte offsets, non-negative for started frames; even from 3.6 on (wordcode)."""
    unit = 2 if running.interp.version >= (3, 6) else 1
    for stack in running.stacks.values():
        for _, offset in stack.frames:
            assert offset >= 0 and offset % unit == 0


def test_main_line_is_the_call(running: Running) -> None:
    source = TARGET.read_text(encoding="utf-8").splitlines()
    line = lines_of(running, running.stacks["main"])[1]
    assert line is not None and source[line - 1].strip() == "main_idle()"


# -- threads --------------------------------------------------------------------------


def test_gil_holder_is_the_spinner(running: Running) -> None:
    walker = StackWalker(running.target)
    spinner = running.info["threads"]["spinner"][0]
    for _ in range(20):
        holders = [t.thread_id for t in walker.walk() if t.holds_gil]
        if holders == [spinner]:
            return
        time.sleep(0.01)
    raise AssertionError(f"GIL holders {holders}, expected the spinner {spinner}")


def test_native_tids(running: Running) -> None:
    pid = running.info["pid"]
    tasks = {int(x) for x in os.listdir(f"/proc/{pid}/task")}
    expected = {running.info["main"]: running.info["main_native"]}
    expected.update({v[0]: v[1] for v in running.info["threads"].values()})
    walked = StackWalker(running.target).walk()
    assert {t.thread_id: t.native_tid for t in walked} == expected
    assert {t.native_tid for t in walked} <= tasks
    assert expected[running.info["main"]] == pid


# -- robustness -----------------------------------------------------------------------


def test_depth_cap_truncates(running: Running) -> None:
    walker = StackWalker(running.target, max_depth=100)
    deep_id = running.info["threads"]["deep"][0]
    deep = next(t for t in walker.walk() if t.thread_id == deep_id)
    assert deep.truncated and len(deep.frames) == 100 and deep.error is None
    sleeper_id = running.info["threads"]["sleeper"][0]
    sleeper = next(t for t in walker.walk() if t.thread_id == sleeper_id)
    assert not sleeper.truncated


def test_repeated_walks_are_stable(running: Running) -> None:
    """The caches (speculative thread list, chain prefetch) must not change answers."""
    walker = StackWalker(running.target)
    parked = {v[0] for n, v in running.info["threads"].items() if n != "spinner"}
    first = {t.thread_id: t.frames for t in walker.walk() if t.thread_id in parked}
    for _ in range(20):
        again = {t.thread_id: t.frames for t in walker.walk() if t.thread_id in parked}
        assert again == first


def test_fingerprints(running: Running) -> None:
    reader = running.reader
    codes = sorted({c for s in running.stacks.values() for c, _ in s.frames})
    fps = reader.fingerprints(codes)
    assert fps == [reader.read_code(c).fingerprint for c in codes]
    assert all(fp is not None for fp in fps)
    # Not a code object: a thread state; unmapped: page zero. Mixed in one call.
    tstate = running.stacks["main"].tstate
    mixed = reader.fingerprints([codes[0], tstate, 0x1000, codes[-1]])
    assert mixed == [fps[0], None, None, fps[-1]]
    with pytest.raises(ReadError):
        reader.read_code(tstate)


def test_code_address_reuse_gets_a_new_ref_and_code_record(running: Running) -> None:
    """The recorder's guard (CodeRefs, used on every sample): the same address, once it
    holds another code object, maps to a new ref with its own CODE record; until then
    every lookup returns the first ref and writes nothing."""
    proc, info = start(running.interp, "reuse")
    target = open_target(proc.pid)
    try:
        emitted: list[tuple[int, str, str]] = []
        refs = CodeRefs(CodeReader(target), lambda r, c: emitted.append((r, c.name, c.filename)))
        address = info["address"]
        first = refs.refs([address])
        assert first is not None and refs.refs([address, address]) == first * 2
        assert emitted == [(first[0], "alpha", "alpha_file.py")] and refs.reused == 0
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert json.loads(read_line(proc, 30)) == {"reused": True}
        second = refs.refs([address])
        assert second is not None and second != first
        assert refs.reused == 1 and len(emitted) == 2
        ref, name, filename = emitted[1]
        assert ref == second[0] and name == "gamma" and filename.startswith("other")
        assert refs.info(address) is not None and refs.info(address).name == "gamma"
        assert refs.refs([address]) == second and len(emitted) == 2
    finally:
        target.close()
        stop(proc)


def test_code_refs_check_each_distinct_code_once_for_all_threads(running: Running) -> None:
    """One vectored read per sample covers every thread's codes, each distinct address
    once; a stack naming something that is not a code object (a torn frame) gets None
    without costing the other stacks theirs."""
    codes = sorted({c for s in running.stacks.values() for c, _ in s.frames})
    refs = CodeRefs(running.reader, lambda r, c: None)
    mem = running.reader.memory
    calls: list[int] = []
    real = mem.read_uniform

    def counting(addresses, size):
        calls.append(len(addresses))
        return real(addresses, size)

    stacks = [codes * 3, codes[:1] * 5, list(reversed(codes))]
    want = [refs.refs(s) for s in stacks]
    assert all(w is not None for w in want)
    mem.read_uniform = counting  # type: ignore[method-assign]
    try:
        assert refs.refs_many(stacks) == want
        assert calls == [len(codes)]  # one read, of the distinct addresses only
        tstate = running.stacks["main"].tstate
        calls.clear()
        before = refs.unreadable
        mixed = refs.refs_many([[0x1000, codes[-1]], codes, [codes[0], tstate], codes[:1]])
        assert mixed == [None, want[2][::-1], None, want[1][:1]]
        assert refs.unreadable == before + 2
        # the unmapped address stops the kernel's read; the ones after it are read again
        assert calls == [len(codes) + 2, len(codes) + 1]
    finally:
        del mem.read_uniform


def test_code_address_reuse_changes_the_fingerprint(running: Running) -> None:
    """A code object freed and another allocated at its address: the fingerprint says so."""
    proc, info = start(running.interp, "reuse")
    target = open_target(proc.pid)
    try:
        reader = CodeReader(target)
        address = info["address"]
        before = reader.read_code(address)
        assert (before.name, before.filename) == ("alpha", "alpha_file.py")
        assert reader.fingerprint(address) == before.fingerprint
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert json.loads(read_line(proc, 30)) == {"reused": True}
        after = reader.fingerprint(address)
        assert after is not None and after != before.fingerprint
        code = reader.read_code(address)
        assert code.name == "gamma" and code.filename.startswith("other")
        assert code.fingerprint == after
    finally:
        target.close()
        stop(proc)


def test_non_compact_strings(running: Running) -> None:
    """str-subclass names (the non-compact PEP 393 layout, data in a separate buffer)."""
    if running.interp.version < (3, 8):
        return  # code.replace() is 3.8+; 2.7 has no PEP 393 strings
    proc, info = start(running.interp, "legacy-string")
    target = open_target(proc.pid)
    try:
        code = CodeReader(target).read_code(info["code"])
        assert code.name == "sub_fé_函数"
        assert code.filename == "/tmp/sub_文件_𠀀.py"
        assert code.qualname == ("q_ß" if running.interp.version >= (3, 11) else None)
        stack = next(t for t in StackWalker(target).walk() if t.thread_id == info["thread"])
        assert stack.frames[0][0] == info["code"]
    finally:
        target.close()
        stop(proc)


def test_torn_reads_of_a_churning_target(running: Running) -> None:
    """Walking a running target whose stacks and threads change all the time: never an
    exception, never a hang; incomplete stacks are reported, and they are rare."""
    proc, info = start(running.interp, "churn")
    target = open_target(proc.pid)
    try:
        walker = StackWalker(target)
        reader = CodeReader(target)
        walks = threads = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            stacks = walker.walk()
            walks += 1
            threads += len(stacks)
            for s in stacks:
                assert len(s.frames) <= walker.max_depth
            codes = sorted({c for s in stacks for c, _ in s.frames})
            reader.fingerprints(codes)  # never raises for garbage addresses
        assert walks > 20 and threads > walks
        assert walker.errors <= threads // 4, (walker.errors, threads)
    finally:
        target.close()
        stop(proc)


@pytest.mark.parametrize("interp", [i for i in INTERPRETERS if i.version < (3, 7)], ids=str)
def test_interp_head_of_a_build_without_symtab(
    interp: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2.7/3.6 keep interp_head in .symtab only; stripped builds lack it, so the walker
    decodes PyInterpreterState_Head (mov interp_head(%rip), %rax; ret) instead."""
    proc, info = start(interp, "bench-sleep", "3")
    try:
        with_symtab = open_target(proc.pid)
        monkeypatch.setattr(ElfImage, "static_symbol", lambda self, name: None)
        stripped = open_target(proc.pid)
        assert stripped.interp_head == with_symtab.interp_head is not None
        (stack,) = StackWalker(stripped).walk()
        assert len(stack.frames) == 3 + 2  # bench_sleep x3, main, <module>
        with_symtab.close()
        stripped.close()
    finally:
        stop(proc)


# -- targets that cannot be profiled ----------------------------------------------------


def test_no_such_process() -> None:
    with pytest.raises(TargetError, match="no such process"):
        open_target(2**22 + 12345)


def test_not_python() -> None:
    proc = subprocess.Popen(["sleep", "100"])
    try:
        time.sleep(0.05)
        with pytest.raises(TargetError, match="not a CPython process"):
            open_target(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_zombie() -> None:
    proc = subprocess.Popen(["true"])
    try:
        for _ in range(200):
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        with pytest.raises(TargetError, match="not a CPython process"):
            open_target(proc.pid)
    finally:
        proc.wait()


def test_permission_denied_says_what_to_do() -> None:
    """An unprivileged user attaching to root's process gets one line with remedies."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root, to run the attacher as 'nobody'")
    proc, _ = start(INTERPRETERS[-1], "bench-sleep", "2")
    code = (
        "from flamekit.record.target import open_target\n"
        "from flamekit.errors import TargetError\n"
        f"try: open_target({proc.pid})\n"
        "except TargetError as e: print(e)\n"
    )
    # /root is private, so 'nobody' runs the system python with flamekit on its path.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    try:
        out = subprocess.run(
            ["/usr/bin/python3.11", "-c", code],
            capture_output=True,
            text=True,
            user="nobody",
            group="nogroup",
            extra_groups=[],
            cwd="/",
            env={"PYTHONPATH": f"{ROOT}:{site}"},
            timeout=30,
        )
    finally:
        stop(proc)
    assert out.stdout.startswith(f"permission denied reading the memory of pid {proc.pid}")
    assert "ptrace_scope" in out.stdout and "CAP_SYS_PTRACE" in out.stdout
    assert out.stdout.count("\n") == 1


def test_process_exits_while_attached() -> None:
    interp = INTERPRETERS[-1]
    proc, _ = start(interp, "bench-sleep", "5")
    target = open_target(proc.pid)
    walker = StackWalker(target)
    assert walker.walk()
    stop(proc)
    with pytest.raises(ProcessGoneError):
        walker.walk()
    target.close()


def test_memory_reads() -> None:
    """Vectored reads of this very process (any live pid works)."""
    data = bytes(range(256)) * 64
    buf = bytearray(data)
    import ctypes

    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    with ProcessMemory(os.getpid()) as mem:
        assert mem.read(addr + 10, 5) == data[10:15]
        assert mem.read_ranges([(addr, 4), (addr + 300, 3)]) == data[:4] + data[300:303]
        got, n = mem.read_uniform([addr, addr + 8, 0x1000, addr], 8)
        assert n == 2 and got == data[:16]
        got, n = mem.read_ranges_partial([(addr, 2), (0x1000, 8)])
        assert n == 1 and got == data[:2]
        with pytest.raises(ReadError):
            mem.read(0x1000, 8)


def test_memory_rereads_a_tuple_of_ranges_after_other_reads() -> None:
    """The iovec table filled for a tuple of ranges is kept for the next read of that
    same tuple; every other kind of read overwrites it, after which the tuple must be
    read from its own ranges again, not from what the other read left."""
    import ctypes

    data = bytes(range(256)) * 64
    buf = bytearray(data)
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    ranges = ((addr + 1, 3), (addr + 500, 7))
    want = data[1:4] + data[500:507]
    with ProcessMemory(os.getpid()) as mem:
        mem._fd = None  # process_vm_readv for the single reads too: they share the table
        assert mem.read_ranges_partial(ranges) == (want, 2)
        assert mem.read_ranges_partial(ranges) == (want, 2)
        buf[1] = 0xEE  # the bytes are read anew each time, only the table is kept
        want = b"\xee" + want[1:]
        assert mem.read_ranges_partial(ranges) == (want, 2)
        for other in (
            lambda: mem.read_uniform([addr + 64, addr + 128], 5),
            lambda: mem.read(addr + 9000, 40),
            lambda: mem.read_ranges_partial([(addr + 2000, 11)]),
            lambda: mem.read_ranges_partial(((addr + 3000, 2), (addr + 4000, 9))),
        ):
            other()
            assert mem.read_ranges_partial(ranges) == (want, 2)


_HOLD_BUF = bytearray(bytes(range(256)) * 64)


@settings(max_examples=200)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, len(_HOLD_BUF) - 1), st.integers(1, 600)), min_size=1, max_size=8
    ),
    flip=st.one_of(st.none(), st.integers(0, len(_HOLD_BUF) - 1)),
    short=st.booleans(),
    unmapped=st.booleans(),
    pread=st.booleans(),
)
def test_memory_ranges_hold_is_a_compare_of_what_the_ranges_read(
    spans: list[tuple[int, int]], flip: int | None, short: bool, unmapped: bool, pread: bool
) -> None:
    """ranges_hold(ranges, data) is exactly "the ranges read whole, and give data": after
    a byte anywhere changed (inside a range or not), with data of the wrong length, with a
    range that cannot be read, through process_vm_readv or /proc/PID/mem, and after other
    reads overwrote the iovec table it may keep."""
    import ctypes

    buf = _HOLD_BUF
    base = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    spans = [(o, min(n, len(buf) - o)) for o, n in spans]
    ranges = tuple((base + o, n) for o, n in spans)
    if unmapped:
        ranges += ((0x1000, 8),)  # never mapped
    data = b"".join(bytes(buf[o : o + n]) for o, n in spans)
    if short:
        data = data[:-1]
    with ProcessMemory(os.getpid()) as mem:
        if pread:
            mem._vm = False
        try:
            if flip is not None:
                buf[flip] ^= 0xFF
            now = b"".join(bytes(buf[o : o + n]) for o, n in spans)
            want = not unmapped and not short and now == data
            assert mem.ranges_hold(ranges, data) is want
            mem.read_ranges_partial(((base + 7, 13),))  # fills the iovec table for itself
            assert mem.ranges_hold(ranges, data) is want
        finally:
            if flip is not None:
                buf[flip] ^= 0xFF


def test_layout_table_is_reproducible() -> None:
    """tools/gen_layouts.py --check: the committed table is what the headers give."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_layouts.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


# -- synthetic processes: corrupt and cyclic chains ---------------------------------------


class FakeMemory:
    """Sparse fake address space: what the walker sees of a process we build by hand."""

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.mem = bytearray(size)

    def put(self, addr: int, fmt: str, *values: int) -> None:
        import struct

        struct.pack_into("<" + fmt, self.mem, addr - self.base, *values)

    def read(self, addr: int, size: int) -> bytes:
        off = addr - self.base
        if off < 0 or off + size > len(self.mem):
            raise ReadError(f"unmapped {addr:#x}", addr)
        return bytes(self.mem[off : off + size])

    def read_ranges_partial(self, ranges):
        out = []
        for a, n in ranges:
            try:
                out.append(self.read(a, n))
            except ReadError:
                break
        return b"".join(out), len(out)

    def read_ranges(self, ranges):
        data, n = self.read_ranges_partial(ranges)
        if n != len(ranges):
            raise ReadError("unmapped", 0)
        return data

    def read_uniform(self, addrs, size):
        return self.read_ranges_partial([(a, size) for a in addrs])

    def close(self) -> None:
        pass


BASE = 0x5500_0000_0000
CODE_TYPE, FRAME_TYPE, NONE = BASE + 0x100, BASE + 0x200, BASE + 0x300
RUNTIME, INTERP, TSTATE = BASE + 0x1000, BASE + 0x10000, BASE + 0x20000
F1, F2, F3, CODE = BASE + 0x30000, BASE + 0x31000, BASE + 0x32000, BASE + 0x40000
ENTRY, CFRAME = BASE + 0x33000, BASE + 0x34000


def put_frame(mem: FakeMemory, lay, frame: int, back: int) -> None:
    """A frame of CODE at offset 10 at ``frame``, its caller at ``back``."""
    if lay.frame_objects:
        mem.put(frame + lay.ob_type, "Q", FRAME_TYPE)
        mem.put(frame + lay.frame_instr, "i", 5)
    else:
        mem.put(frame + lay.frame_instr, "Q", CODE + lay.code_adaptive + 10)
    mem.put(frame + lay.frame_back, "Q", back)
    mem.put(frame + lay.frame_code, "Q", CODE)


def synthetic(version: tuple[int, int]) -> tuple[FakeMemory, PythonTarget]:
    """runtime -> one interpreter -> one thread -> frames F1 -> F2 -> F3, code CODE; on
    3.12+ F3 -> ENTRY, the C-stack shim every whole chain ends at."""
    lay = layout_from_table(version)
    mem = FakeMemory(BASE, 0x50000)
    mem.put(RUNTIME + lay.runtime_interpreters_head, "Q", INTERP)
    mem.put(INTERP + lay.interp_next, "Q", 0)
    mem.put(INTERP + lay.interp_threads_head, "Q", TSTATE)
    mem.put(TSTATE + lay.tstate_next, "Q", 0)
    mem.put(TSTATE + lay.tstate_thread_id, "Q", 0x7777_0000)
    if lay.cframe_current_frame is None:
        mem.put(TSTATE + lay.tstate_frame, "Q", F1)
    else:  # 3.11/3.12: the thread state points at a _PyCFrame, that at the frame
        mem.put(TSTATE + lay.tstate_frame, "Q", CFRAME)
        mem.put(CFRAME + lay.cframe_current_frame, "Q", F1)
    mem.put(CODE + lay.ob_type, "Q", CODE_TYPE)
    if lay.runtime_tstate_current is not None:  # 3.7-3.11: the thread state with the GIL
        mem.put(RUNTIME + lay.runtime_tstate_current, "Q", TSTATE)
    chain = [(F1, F2), (F2, F3), (F3, 0)]
    if lay.owner_skip_from is not None:
        chain[-1] = (F3, ENTRY)
        mem.put(ENTRY + lay.frame_owner, "B", lay.owner_skip_from)
        mem.put(ENTRY + lay.frame_code, "Q", NONE)
    for frame, back in chain:
        put_frame(mem, lay, frame, back)
    return mem, synthetic_target(mem, version)


def synthetic_target(mem: FakeMemory, version: tuple[int, int]) -> PythonTarget:
    """A target of this version whose memory is ``mem``, with the synthetic symbols."""
    return PythonTarget(
        pid=os.getpid(),
        memory=mem,  # type: ignore[arg-type]
        binary="synthetic",
        version=(*version, 0),
        layout=layout_from_table(version),
        runtime=RUNTIME,
        interp_head=None,
        symbols={"PyCode_Type": CODE_TYPE, "PyFrame_Type": FRAME_TYPE, "_Py_NoneStruct": NONE},
    )


@pytest.mark.parametrize("version", [(3, 10), (3, 13)], ids=["frame-objects", "interp-frames"])
def test_synthetic_chain(version: tuple[int, int]) -> None:
    mem, target = synthetic(version)
    (stack,) = StackWalker(target).walk()
    assert stack.frames == ((CODE, 10),) * 3
    assert stack.error is None and not stack.truncated
    assert stack.thread_id == 0x7777_0000
    if version == (3, 10):
        assert stack.holds_gil


@pytest.mark.parametrize("version", [(3, 10), (3, 12), (3, 13)], ids=str)
def test_interpreters_are_the_last_walks(version: tuple[int, int]) -> None:
    """StackWalker.interpreters: the interpreter list as the last walk found it, in list
    order (readers of thread names take it from there instead of walking the list a
    second time), whether the walk read the list link by link, in one read, or reused
    the last parse (3.12+, steady); it follows an interpreter that goes."""
    mem, target = synthetic(version)
    lay = target.layout
    interp2, tstate2 = BASE + 0x12000, BASE + 0x22000
    mem.put(INTERP + lay.interp_next, "Q", interp2)
    mem.put(interp2 + lay.interp_threads_head, "Q", tstate2)
    mem.put(tstate2 + lay.tstate_thread_id, "Q", 0x7777_1000)
    if lay.interp_ceval_gil is not None:  # 3.12: each interpreter's GIL
        for interp in (INTERP, interp2):
            mem.put(interp + lay.interp_ceval_gil, "Q", BASE + 0x36000)
    walker = StackWalker(target)
    assert walker.interpreters == ()
    for _ in range(3):
        stacks = walker.walk()
        assert walker.interpreters == (INTERP, interp2)
        assert [s.interp for s in stacks] == [INTERP, interp2]
    if version >= (3, 12):
        assert walker.steadied  # the third walk reused the second's parse
    mem.put(INTERP + lay.interp_next, "Q", 0)  # the second interpreter is gone
    stacks = walker.walk()
    assert walker.interpreters == (INTERP,)
    assert [s.interp for s in stacks] == [INTERP]


@pytest.mark.parametrize("version", [(3, 10), (3, 13)], ids=["frame-objects", "interp-frames"])
def test_cyclic_chain_is_cut(version: tuple[int, int]) -> None:
    mem, target = synthetic(version)
    mem.put(F3 + target.layout.frame_back, "Q", F1)  # F1 -> F2 -> F3 -> F1 -> ...
    walker = StackWalker(target, max_depth=100)
    for _ in range(3):  # the prefetching second walk must not loop either
        (stack,) = walker.walk()
        assert stack.truncated and len(stack.frames) == 100
    # Under the default cap (65,536) a cycle is found within CYCLE_CHECK frames: an error,
    # not a walk that runs to the cap.
    walker = StackWalker(target)
    for _ in range(3):
        (stack,) = walker.walk()
        assert stack.error is not None and "cyclic" in stack.error
        assert not stack.truncated and len(stack.frames) <= CYCLE_CHECK


@pytest.mark.parametrize("version", [(3, 10), (3, 13)], ids=["frame-objects", "interp-frames"])
def test_a_long_acyclic_chain_is_not_called_cyclic(version: tuple[int, int]) -> None:
    """The cycle check looks at the frames walked, not at the depth: a chain longer than
    CYCLE_CHECK whose frames are all distinct walks to its end."""
    lay = layout_from_table(version)
    n = CYCLE_CHECK + 500
    frames = [BASE + 0x50000 + 0x100 * i for i in range(n)]
    mem, target = synthetic(version)
    grown = FakeMemory(BASE, 0x50000 + 0x100 * n + 0x1000)
    grown.mem[: len(mem.mem)] = mem.mem
    target.memory = grown  # type: ignore[assignment]
    grown.put(F3 + lay.frame_back, "Q", frames[0])
    for f, back in zip(frames, frames[1:] + [ENTRY if lay.owner_skip_from is not None else 0]):
        put_frame(grown, lay, f, back)
    (stack,) = StackWalker(target).walk()
    assert stack.error is None and not stack.truncated
    assert len(stack.frames) == n + 3


@pytest.mark.parametrize("version", [(3, 10), (3, 13)], ids=["frame-objects", "interp-frames"])
@pytest.mark.parametrize(
    "where, value, message",
    [
        ("back", 0x1235, "bad frame pointer"),
        ("back", BASE + 0x60000, "cannot read frame"),
        ("back", 0xFFFF_FFFF_FFFF_FFF8, "bad frame pointer"),
        ("code", 0x7, "bad code pointer"),
        ("code", 0xFFFF_FFFF_FFFF_FFF0, "bad code pointer"),
    ],
)
def test_corrupt_chain_is_reported(version, where: str, value: int, message: str) -> None:
    mem, target = synthetic(version)
    lay = target.layout
    mem.put(F2 + (lay.frame_back if where == "back" else lay.frame_code), "Q", value)
    walker = StackWalker(target)
    (stack,) = walker.walk()
    assert stack.error is not None and message in stack.error
    assert stack.frames[0] == (CODE, 10)
    assert walker.errors == 1


@pytest.mark.parametrize(
    "version, owner, torn",
    [
        ((3, 11), 0, False),  # a thread's own first frame
        ((3, 11), 1, True),  # a generator's: it was suspended, its link cut
        ((3, 12), 3, False),  # the C-stack shim of the first eval entry
        ((3, 12), 0, True),  # from 3.12 on, a whole chain always ends at a shim
        ((3, 12), 1, True),
        ((3, 13), 3, False),
        ((3, 13), 2, True),
    ],
)
def test_a_chain_ending_where_no_stack_ends_is_torn(
    version: tuple[int, int], owner: int, torn: bool
) -> None:
    """A read racing the target can follow a chain to a frame no whole stack ends at (a
    generator suspended meanwhile links to nothing): an error, not a shorter stack."""
    mem, target = synthetic(version)
    lay = target.layout
    mem.put(F3 + lay.frame_back, "Q", 0)  # F3 is the outermost frame now
    mem.put(F3 + lay.frame_owner, "B", owner)
    if owner >= (lay.owner_skip_from or 256):
        mem.put(F3 + lay.frame_code, "Q", NONE)
    walker = StackWalker(target)
    (stack,) = walker.walk()
    if torn:
        assert stack.error is not None and "torn chain" in stack.error
        assert walker.errors == 1
    else:
        assert stack.error is None and len(stack.frames) in (2, 3)


@pytest.mark.parametrize(
    "version, running, torn",
    [
        ((3, 8), 1, False),  # f_executing
        ((3, 8), 0, True),  # a suspended generator's frame
        ((3, 9), 0, True),
        ((3, 10), 0, False),  # f_state FRAME_EXECUTING
        ((3, 10), -1, True),  # FRAME_SUSPENDED
    ],
)
def test_a_frame_object_chain_ending_at_a_frame_not_running_is_torn(
    version: tuple[int, int], running: int, torn: bool
) -> None:
    """<= 3.10: the outermost frame of a whole chain runs; one that does not is a
    generator suspended meanwhile (its f_back cleared), met by a racing read."""
    mem, target = synthetic(version)
    lay = target.layout
    for frame in (F1, F2):
        mem.put(frame + lay.frame_running, "b", lay.frame_running_value)
    mem.put(F3 + lay.frame_running, "b", running)
    walker = StackWalker(target)
    (stack,) = walker.walk()
    if torn:
        assert stack.error is not None and "torn chain" in stack.error
    else:
        assert stack.error is None and len(stack.frames) == 3


def test_unverified_gil_offsets_report_no_holder() -> None:
    """3.7.0-3.7.3 moved the GIL words: such builds walk normally, with no GIL holder."""
    assert layout_for_release((3, 7, 2)).gil_mode == GIL_UNKNOWN
    assert layout_for_release((3, 7, 16)).gil_mode != GIL_UNKNOWN
    mem, target = synthetic((3, 10))
    target.layout = without_gil(target.layout)
    (stack,) = StackWalker(target).walk()
    assert stack.frames == ((CODE, 10),) * 3 and not stack.holds_gil


def test_shim_frames_are_skipped() -> None:
    mem, target = synthetic((3, 13))
    lay = target.layout
    mem.put(F2 + lay.frame_owner, "B", 3)  # FRAME_OWNED_BY_CSTACK
    mem.put(F2 + lay.frame_code, "Q", NONE)
    (stack,) = StackWalker(target).walk()
    assert stack.frames == ((CODE, 10),) * 2


# -- benchmark ------------------------------------------------------------------------


def bench(depth: int = 50, walks: int = 3000) -> None:
    """CPU microseconds per walk of a ``depth``-deep stack, per interpreter."""
    for interp in INTERPRETERS:
        for mode in ("bench-sleep", "bench"):
            proc, _ = start(interp, mode, str(depth))
            try:
                time.sleep(0.2)
                target = open_target(proc.pid)
                walker = StackWalker(target)
                reader = CodeReader(target)
                stacks = walker.walk()
                codes = sorted({c for s in stacks for c, _ in s.frames})
                c0 = time.process_time()
                for _ in range(walks):
                    walker.walk()
                c1 = time.process_time()
                for _ in range(walks):
                    reader.fingerprints(codes)
                c2 = time.process_time()
                print(
                    f"{interp.id:11} {mode:11} {len(stacks[0].frames):3} frames: "
                    f"walk {(c1 - c0) / walks * 1e6:6.1f} us, "
                    f"fingerprints of {len(codes)} codes {(c2 - c1) / walks * 1e6:5.1f} us "
                    "(CPU time)"
                )
                target.close()
            finally:
                stop(proc)


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    else:
        sys.exit(pytest.main([__file__, *sys.argv[1:]]))

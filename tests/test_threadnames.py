"""Thread names read from a live target's memory (flamekit.record.threadnames).

Every interpreter on this machine runs tests/targets/threadnames_named.py, whose threads
are named in every way a name can be set (non-ASCII of each PEP 393 kind, renamed after
start, a subclass, an instance dict that exists as a dict, one that outgrew its class's
shared keys, the default name) plus one thread started with _thread (no name). The
thread ids come from the stack walker, the expected names from the target itself. (The
object table these reads use, and its generator's --check, are tested in
test_objects.py.)
"""

from __future__ import annotations

import json
import random
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from flamekit.errors import TargetError
from flamekit.record.code_reader import CodeReader
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget, open_target
from flamekit.record.threadnames import ThreadNames
from flamekit.record.walk import StackWalker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pythons import Interpreter, legacy, recordable  # noqa: E402

HERE = Path(__file__).resolve().parent
NAMED = HERE / "targets" / "threadnames_named.py"
BARE = HERE / "targets" / "threadnames_bare.py"


INTERPRETERS = legacy() + recordable()


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


def launch(argv: list[str]) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        return proc, json.loads(read_line(proc, 30))
    except BaseException:
        stop(proc)
        raise


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f:
            f.close()


def interpreters_of(walker: StackWalker) -> Sequence[int]:
    """What the recorder passes to lookup: the walker's interpreters as of its last walk."""
    return walker.interpreters


@dataclass
class Named:
    interp: Interpreter
    proc: subprocess.Popen
    target: PythonTarget
    expected: dict[int, str]  #: ident -> name, as the target printed them
    unnamed: list[int]  #: idents of threads started with _thread
    walked: list[int]  #: thread ids the stack walker found
    interpreters: Sequence[int]  #: the walker's, as lookup takes them

    def names(self) -> ThreadNames:
        return ThreadNames(self.target, CodeReader(self.target))


@pytest.fixture(scope="module", params=INTERPRETERS, ids=str)
def named(request: pytest.FixtureRequest) -> Iterator[Named]:
    interp: Interpreter = request.param
    proc, info = launch([interp.path, str(NAMED)])
    target = open_target(proc.pid)
    try:
        walker = StackWalker(target)
        walked = [st.thread_id for st in walker.walk()]
        expected = {int(k): v for k, v in info["names"].items()}
        interps = interpreters_of(walker)
        yield Named(interp, proc, target, expected, info["unnamed"], walked, interps)
    finally:
        target.close()
        stop(proc)


def test_walker_sees_every_thread(named: Named) -> None:
    """The ids the test looks up are the walker's, and they are the target's idents."""
    assert set(named.expected) | set(named.unnamed) == set(named.walked)


def test_every_named_thread_by_walked_id(named: Named) -> None:
    got = named.names().lookup(named.walked, named.interpreters)
    assert got == named.expected
    assert got[next(i for i, n in named.expected.items() if n == "MainThread")] == "MainThread"


def test_names_of_every_kind_are_there(named: Named) -> None:
    """The target's names cover each way of storing and setting one (guards the target)."""
    names = set(named.expected.values())
    for name in ("alpha", "wörker-λ", "snake-\U0001f40d-four-byte", "café-latin1"):
        assert name in names
    assert "renamed-after-start-é" in names and "before-rename" not in names
    assert {"subclass-worker", "dict-materialized", "combined-dict"} <= names
    assert any(n.startswith("Thread-") for n in names)
    assert "long-" + "x" * 200 in names


def test_thread_not_started_by_threading_is_absent(named: Named) -> None:
    assert len(named.unnamed) == 1
    assert named.names().lookup(named.unnamed, named.interpreters) == {}


def test_unknown_ids_are_absent(named: Named) -> None:
    names = named.names()
    bogus = [1, 12345, max(named.walked) + 4096, 2**63 + 5]
    assert names.lookup(bogus, named.interpreters) == {}
    got = names.lookup([*bogus, *named.walked], named.interpreters)
    assert got == named.expected
    assert names.lookup([], named.interpreters) == {}
    assert names.lookup([-1, 0], named.interpreters) == {}


def test_second_lookup_reuses_the_active_dict(named: Named) -> None:
    """After the first lookup, sys.modules is not walked again: few reads per lookup."""
    names = named.names()
    some = list(named.expected)[:3]
    assert names.lookup(some, named.interpreters) == {i: named.expected[i] for i in some}
    memory = named.target.memory
    calls = []
    originals = {}
    for attr in ("read", "read_ranges_partial", "read_uniform"):
        originals[attr] = getattr(memory, attr)

        def counted(*a: object, _f=originals[attr], **k: object) -> object:
            calls.append(1)
            return _f(*a, **k)

        setattr(memory, attr, counted)
    try:
        # Named threads only: on 3.14 a missing one would add the /proc comm fallback.
        assert names.lookup(list(named.expected), named.interpreters) == named.expected
    finally:
        for attr in originals:
            delattr(memory, attr)  # the instance attribute: back to the class's method
    # (interpreters 2 where the walker gives none), _active 3, ints 0-1, objects 1,
    # instance dicts 3, values 1, strings 1-2, confirming 1 (13 on 3.12; 16 before the
    # object reader): nowhere near a sys.modules walk's dozens.
    assert len(calls) <= 20, len(calls)


def test_comm_fallback_on_314(named: Named) -> None:
    """3.14 names OS threads; with memory unreadable, comm still gives 15-byte names."""
    names = named.names()
    names._from_memory = lambda want, interpreters: {}  # type: ignore[method-assign]
    got = names.lookup(named.walked, named.interpreters)  # as if the chain could not be read
    if named.interp.version < (3, 14):
        assert got == {}
        return
    by_name = {n: i for i, n in named.expected.items()}
    assert got[by_name["alpha"]] == "alpha"
    # Renamed from another thread: the OS name is not updated, so comm is stale. That is
    # why names come from memory first.
    assert got[by_name["renamed-after-start-é"]] == "before-rename"
    assert got[by_name["subclass-worker"]] == "subclass-worker"[:15]
    assert got[by_name["long-" + "x" * 200]] == ("long-" + "x" * 200)[:15]
    main = by_name["MainThread"]
    assert main not in got  # comm of the main thread is the program's name
    # names filling comm's 15 bytes may be cut: provisional, to be asked for again
    # (renamed: comm has the 13 bytes of "before-rename", the name it was started with)
    started = {**named.expected, by_name["renamed-after-start-é"]: "before-rename"}
    assert names.provisional == {i for i in got if len(started[i].encode()) >= 15}
    assert {by_name["subclass-worker"], by_name["long-" + "x" * 200]} <= names.provisional
    assert not set(got) & set(named.unnamed)


def test_process_that_exited(named: Named) -> None:
    """A target gone between lookups: no exception, no names."""
    proc, _ = launch([named.interp.path, str(BARE)])
    target = open_target(proc.pid)
    try:
        walker = StackWalker(target)
        ids = [st.thread_id for st in walker.walk()]
        names = ThreadNames(target, CodeReader(target))
        stop(proc)
        assert names.lookup(ids, interpreters_of(walker)) == {}
    finally:
        target.close()


@pytest.mark.parametrize("interp", INTERPRETERS, ids=str)
def test_threading_never_imported(interp: Interpreter) -> None:
    flags = ["-E", "-s", "-S"] if interp.version < (3, 0) else ["-I", "-S"]
    proc, info = launch([interp.path, *flags, str(BARE)])
    target = open_target(proc.pid)
    try:
        assert info["threading"] is False
        walker = StackWalker(target)
        ids = [st.thread_id for st in walker.walk()]
        assert len(ids) == 1
        names = ThreadNames(target, CodeReader(target))
        assert names.lookup(ids, interpreters_of(walker)) == {}
        assert names.lookup(ids, interpreters_of(walker)) == {}  # and again, still quietly
    finally:
        target.close()
        stop(proc)


def test_garbage_offsets_never_raise(named: Named) -> None:
    """Wrong offsets read garbage; every check must hold and lookup return quietly."""
    from dataclasses import replace

    for field, value in (
        ("interp_modules", 8),
        ("module_dict", 0),
        ("dict_keys", 8),
        ("entry_size", 8),
        ("long_digits", 0),
        ("type_dictoffset", 8),
        ("heap_cached_keys", 8),
    ):
        names = named.names()
        off = names.objects.off
        assert off is not None
        if getattr(off, field) is None:
            continue
        names.objects.configure(replace(off, **{field: value}))
        names._from_comm = lambda idents, interpreters: {}  # type: ignore[method-assign]
        got = names.lookup(named.walked, named.interpreters)
        assert isinstance(got, dict)
        for ident, name in got.items():
            assert named.expected[ident] == name, (field, ident, name)


CHURN = HERE / "targets" / "threadnames_churn.py"
CHURN_NAMES = re.compile(r"(churn-\d+|hot-a|hot-λλ|hot-c{40}|hot-\U0001f40d|spin-\d+-é|MainThread)")


def comm_name(interp: Interpreter, name: str) -> bool:
    """3.14's fallback: a real name cut to the 15 bytes of the OS thread name."""
    if interp.version < (3, 14) or len(name.encode()) > 15:
        return False
    return any(n.startswith(name) for n in ("hot-" + "c" * 40, "hot-λλ"))


@pytest.mark.parametrize("interp", INTERPRETERS, ids=str)
def test_running_target_with_churning_threads(interp: Interpreter) -> None:
    """Threads come and go and rename themselves while we read, never paused: lookups
    must not raise, and every name returned must be one the target really uses."""
    proc, _ = launch([interp.path, str(CHURN)])
    target = open_target(proc.pid)
    try:
        walker = StackWalker(target)
        names = ThreadNames(target, CodeReader(target))
        seen: set[str] = set()
        lookups = 0
        kinds = ("MainThread", "churn-", "spin-", "hot-")

        def every_kind_seen() -> bool:
            return all(any(n.startswith(k) for n in seen) for k in kinds)

        # At least 0.5 s of reading; longer (up to 5 s) if a loaded machine starves the
        # target's threads so that some kind of name has not shown up yet.
        start = time.monotonic()
        while time.monotonic() - start < 0.5 or (
            not every_kind_seen() and time.monotonic() - start < 5
        ):
            ids = [st.thread_id for st in walker.walk()]
            got = names.lookup(ids, interpreters_of(walker))
            lookups += 1
            for ident, name in got.items():
                assert ident in ids
                assert CHURN_NAMES.fullmatch(name) or comm_name(interp, name), name
            seen.update(got.values())
        assert every_kind_seen(), (lookups, seen)
    finally:
        target.close()
        stop(proc)


class GarbageMemory:
    """Reads answered with garbage that often looks right: words drawn from the target's
    real type addresses, plausible pointers, small counts and zeros, and now and then an
    unreadable range. Deterministic per seed. ``biggest``: the largest range asked for."""

    def __init__(self, seed: int, words: list[int]) -> None:
        self.rng = random.Random(seed)
        self.words = words
        self.biggest = 0

    def _bytes(self, size: int) -> bytes:
        rng, words = self.rng, self.words
        self.biggest = max(self.biggest, size)
        n = (size + 7) // 8
        if n > 4096:  # big tables: mostly zeros, cheap
            return bytes(size)
        return b"".join(struct.pack("<Q", rng.choice(words)) for _ in range(n))[:size]

    def read(self, address: int, size: int) -> bytes:
        if self.rng.random() < 0.05:
            raise ReadError("unreadable", address)
        return self._bytes(size)

    def read_ranges_partial(self, ranges):  # type: ignore[no-untyped-def]
        out = []
        for k, (_, size) in enumerate(ranges):
            if self.rng.random() < 0.05:
                return b"".join(out), k
            out.append(self._bytes(size))
        return b"".join(out), len(ranges)


def test_garbage_memory_never_raises_or_hangs(named: Named) -> None:
    """Only TargetError (unreadable memory) may come out of the chain itself, every loop
    ends quickly, and lookup() never raises."""
    names = named.names()
    assert names.objects.off is not None
    names.objects.read_type_symbols()
    real = dict(names.objects.types)
    pointers = [0x7F0000001000 + 8 * i for i in range(0, 4096, 37)]
    words = [*real.values(), *pointers, 0, 0, 0, 1, 2, 3, 5, 16, 0x21, 1 << 40, 2**64 - 1]
    want = set(named.walked)
    interpreters = named.interpreters or names._interpreters_fallback()
    for seed in range(150):
        names.memory = names.objects.memory = GarbageMemory(seed, words)  # type: ignore[assignment]
        names._active.clear()
        names.objects.forget()
        started = time.monotonic()
        try:
            got = names._from_memory(want, interpreters)
        except TargetError:
            got = {}
        assert time.monotonic() - started < 2.0, seed
        assert all(isinstance(v, str) for v in got.values())
        assert isinstance(names.lookup(named.walked, interpreters), dict)


class CorruptingMemory:
    """The real memory, with each aligned word of every read flipped (XOR with a mask
    whose bytes are all nonzero) with probability ``rate``: real structure, so the chain
    gets deep before it goes wrong, and every corrupted byte differs from memory, so a
    second read agrees with a corrupted one only by a 1-in-255-per-byte coincidence (two
    reads that agree are, to any reader, what memory holds)."""

    def __init__(self, real: object, seed: int, rate: float) -> None:
        self.real = real
        self.rng = random.Random(seed)
        self.rate = rate

    def _corrupt(self, data: bytes, address: int) -> bytes:
        buf = bytearray(data)
        rng = self.rng
        first = -address % 8  # corrupt whole words of the target's address space
        for pos in range(first - 8 if first else 0, len(buf), 8):
            if rng.random() < self.rate:
                for k in range(max(pos, 0), min(pos + 8, len(buf))):
                    buf[k] ^= rng.randrange(1, 256)
        return bytes(buf)

    def read(self, address: int, size: int) -> bytes:
        return self._corrupt(self.real.read(address, size), address)  # type: ignore[attr-defined]

    def read_ranges_partial(self, ranges):  # type: ignore[no-untyped-def]
        data, k = self.real.read_ranges_partial(ranges)  # type: ignore[attr-defined]
        out, pos = [], 0
        for address, size in ranges[:k]:
            out.append(self._corrupt(data[pos : pos + size], address))
            pos += size
        return b"".join(out), k


def test_corrupted_reads_give_right_names_or_none(named: Named) -> None:
    """Real memory with random words corrupted: a wrong word either stops the chain or
    is caught by the confirming read, so every name returned is the right one."""
    names = named.names()
    real_memory = names.memory
    total = 0
    for seed in range(60):
        corrupt = CorruptingMemory(real_memory, seed, 0.02)
        names.memory = names.objects.memory = corrupt  # type: ignore[assignment]
        names._active.clear()
        names.objects.forget()
        names._from_comm = lambda idents, interpreters: {}  # type: ignore[method-assign]
        got = names.lookup(named.walked, named.interpreters)
        total += len(got)
        for ident, name in got.items():
            assert named.expected.get(ident) == name, (seed, ident, name)
    assert total > 0  # the corruption is light enough for names to get through

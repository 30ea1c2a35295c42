"""The walker reuses the unchanged bottom of each thread's last chain: the stacks
it returns must be exactly the ones a walker without any memory of earlier walks finds.

One target (tests/targets/churn_stack.py) changes its three threads' stacks all the time:
random depths, generator frames outside the data stack, C-called callbacks (entry frames
on the C stack) and exceptions; the other (steady_stack.py) keeps them still but for the
innermost frame, so the walker also reuses its parse of the thread states. Each is paused
for every comparison, so both walkers read the same bytes. On 2.7, 3.6 and 3.7 too, with
fewer rounds (LEGACY_ROUNDS), to keep the suite's time: their frame objects are reused
as 3.8-3.10's are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flamekit.record.proc.pause import Pauser
from flamekit.record.target import open_target
from flamekit.record.walk import StackWalker
from flamekit.record.walk.frame_objects import _holding, _OChain
from flamekit.record.walk.interpreter_frames import _Chain, _splice_floor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pythons import Interpreter, legacy, recordable  # noqa: E402

TARGETS = Path(__file__).resolve().parent / "targets"
ROUNDS = 300
LEGACY = legacy()
LEGACY_ROUNDS = 60
DEEP_FRAME_OBJECT_ROUNDS = 100


@pytest.mark.parametrize("target_name", ["churn_stack", "steady_stack", "deep_stack"])
@pytest.mark.parametrize("interp", LEGACY + recordable(), ids=str)
def test_reused_chains_match_a_fresh_walk(interp: Interpreter, target_name: str) -> None:
    """Both kinds of reuse against a fresh walk: on the churning target the thread states
    change all the time (the parse of the thread list is rarely reused, the bottoms of
    chains are); on the steady one they stay put, and the walker must notice the few
    samples where they did not. Where each evaluation call's frames end (3.11+, the
    C-called callbacks split the stacks) must come through every reuse too."""
    proc = subprocess.Popen(
        [interp.path, str(TARGETS / f"{target_name}.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        pid = json.loads(proc.stdout.readline())["ready"]
        target = open_target(pid)
        walker = StackWalker(target, eval_ends=True)
        compared = 0
        deepest = 0
        calls = 0  # the most evaluation calls a stack was split into
        rounds = LEGACY_ROUNDS if interp in LEGACY else ROUNDS
        if target_name == "deep_stack" and interp.version < (3, 11):
            # each fresh walk of 400+ frame objects costs ~25 ms there: 300 rounds took
            # 14-16 s per interpreter (3.8-3.10), some 45 s of the suite
            rounds = DEEP_FRAME_OBJECT_ROUNDS
        with Pauser(pid) as pauser:
            for _ in range(rounds):
                result = pauser.pause()
                try:
                    if not result.complete:
                        continue
                    got = sorted(walker.walk(), key=lambda s: s.tstate)
                    fresh = StackWalker(target, eval_ends=True)
                    want = sorted(fresh.walk(), key=lambda s: s.tstate)
                finally:
                    pauser.resume()
                assert got == want
                compared += 1
                deepest = max([deepest] + [len(s.frames) for s in want])
                calls = max([calls] + [len(s.eval_ends) for s in want])
                time.sleep(0.0005)
        target.close()
        assert compared >= rounds * 0.9
        # the threads were in their loops: the deepest stack of any round, since the last
        # round alone may catch every thread between two recursions (a CI run did, on 3.8)
        assert deepest > 5
        # the reuse really ran (three threads a round), and not only when nothing moved;
        # on 3.11+ also above a deep stack's part in older chunks
        assert walker.spliced > rounds
        if not target.layout.frame_objects and target_name != "steady_stack":
            assert calls >= 3, calls
        if target_name == "deep_stack":
            assert deepest > 400  # deeper than a chunk
            if not target.layout.frame_objects:
                # the deep parts in older chunks were reused in most thread walks, and
                # not always (they change too)
                assert rounds < walker.tail_hits < 3 * compared
        elif target_name == "steady_stack" and not target.layout.frame_objects:
            # the thread list's parse was reused in most rounds (3.11+)
            assert walker.steadied > rounds / 2
    finally:
        proc.kill()
        proc.wait()


def _chain(buf: bytes, reach: list[int], hint: int = -1, outs=()) -> _Chain:
    c = _Chain()
    c.chunk, c.buf, c.rpos, c.size, c.flen = 0x10000, buf, 0, len(buf), 8
    c.rev_addrs = [0x10000 + 16 * q for q in range(len(reach))]
    c.rev_reach = reach
    c.solid = len(reach)
    c.hint = hint
    c.outs = list(outs)
    return c


@pytest.mark.parametrize("hint", [-1, 0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("changed", [0, 10, 20, 33, 40, 63, 64, None])
def test_splice_floor_finds_the_highest_unchanged_part(hint: int, changed: int | None) -> None:
    """Position p may be reused when the first reach[p] bytes are unchanged; the search
    (from the last walk's hint, then bisecting) must find the highest such p below q."""
    old = bytes(range(80))
    new = bytearray(old)
    if changed is not None and changed < len(new):
        new[changed] ^= 0xFF
    reach = [8, 16, 24, 40, 48, 64, 80]
    q = 6
    floor = _splice_floor(_chain(old, reach, hint), q, bytes(new), 0, 80, b"", {})
    first_diff = len(old) if changed is None or changed >= len(old) else changed
    want = sum(1 for n in reach[: q + 1] if n <= first_diff)
    assert floor == want


def test_splice_floor_checks_frames_outside_the_region() -> None:
    """A frame outside the data stack (a generator's, an entry frame on the C stack) that
    changed forbids reusing anything above it, however unchanged the region is."""
    region = bytes(range(64))
    reach = [0, 16, 32, 48]  # position 0: the frame outside, at the bottom
    outside = 0x70000
    outs = [(0, outside, b"A" * 8)]
    ok = _splice_floor(
        _chain(region, reach, outs=outs), 3, region, 0, 64, b"xxA" + b"A" * 8, {outside: 3}
    )
    assert ok == 4
    changed = _splice_floor(
        _chain(region, reach, outs=outs), 3, region, 0, 64, b"xxA" + b"B" * 8, {outside: 3}
    )
    assert changed == 0
    unread = _splice_floor(_chain(region, reach, outs=outs), 3, region, 0, 64, b"", {})
    assert unread == 0


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40),
    flen=st.sampled_from([8, 24, 112]),
    changed=st.lists(st.integers(0, 39), max_size=4),
    data=st.data(),
)
def test_holding_counts_the_unchanged_bottom_frames(
    n: int, flen: int, changed: list[int], data: st.DataObject
) -> None:
    """3.10 and older: the frames at the bottom of the last chain whose bytes, and those of
    every frame below them, are the same in this read's prefetch (frames scattered in it
    in any order) may be reused; the first changed frame from the bottom stops it."""
    addrs = [0x10000 + 0x1000 * i for i in range(n)]  # innermost first
    old = [bytes([i % 251]) * flen for i in range(n)]
    new = list(old)
    for c in changed:
        if c < n:
            new[c] = bytes([(c + 7) % 251]) + new[c][1:]
    order = data.draw(st.permutations(range(n)))  # where each frame lies in the read
    pad = b"\xee" * 5
    buf = bytearray(pad)
    pos_of = {}
    for i in order:
        pos_of[addrs[i]] = len(buf)
        buf += new[i] + pad
    last = _OChain(addrs[::-1], {}, (), b"".join(old), None, None)
    got = _holding(last, bytes(buf), pos_of, flen)
    moved = [c for c in changed if c < n]
    want = n - (max(moved) + 1 if moved else 0)
    assert got == want
    assert _holding(last, bytes(buf), pos_of, flen) == want  # again, from the kept slices
    del pos_of[addrs[data.draw(st.integers(0, n - 1))]]  # a frame not prefetched
    assert _holding(last, bytes(buf), dict(pos_of), flen) == 0

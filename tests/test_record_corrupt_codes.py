"""Issue 17: a target that corrupts its own code objects cannot crash the recorder.

A target may rewrite its code objects' fields with ctypes while it runs. A code whose
header changed is a reused address to the recorder, and one that then fails to read is
no code at all: it must be forgotten once, not counted as reused again at every check.
Before the fix each failed read counted another reuse, the sampler checked again for
it, and the check recursed until a RecursionError killed the recorder, leaving a trace
without END (tests/targets/corrupt_codes.py: every run on 3.9 and 3.11).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pythons import Interpreter, recordable
from test_reliability_common import TARGETS, check_complete, run_flamekit, summary

from flamekit.record import sampler
from flamekit.record.code_reader import CodeInfo, CodeReader
from flamekit.record.code_refs import CodeRefs
from flamekit.record.target import open_target

CORRUPT = TARGETS / "corrupt_codes.py"
FLIP = TARGETS / "code_flip.py"


#: Paused, every interpreter (each failed before the fix); not paused, the target mends
#: its code while the recorder checks it again, so the recursion ended by luck: one.
CASES = [pytest.param(i, [], id=f"{i}-pausing") for i in recordable()] + [
    pytest.param(i, ["--nonblocking"], id=f"{i}-nonblocking")
    for i in recordable()
    if i.id == "3.11"
]


@pytest.mark.parametrize("interp, mode", CASES)
def test_a_target_corrupting_its_code_objects_is_recorded_to_the_end(
    tmp_path: Path, interp: Interpreter, mode: list[str]
) -> None:
    out = tmp_path / "corrupt.fkt"
    r = run_flamekit(
        "record", "-q", "-r", 1000, *mode, "-o", out, "--", interp.path, CORRUPT, 2,
        timeout=60,
    )  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 0, err
    errors = int(summary(err)["errors"].replace(",", ""))
    tr = check_complete(out, "target-exited")
    # Sampled while broken, spin's code is no code: counted, never recorded.
    assert errors > 0 and tr.end.errors == errors
    spins = [c for c in tr.codes.values() if c.name == "spin"]
    assert spins, "no sample of spin while its code was whole"
    assert {c.filename for c in spins} == {str(CORRUPT)}
    sampled = {ref for frames in tr.stacks.values() for ref, _ in frames}
    assert sampled & {c.ref for c in spins}


class _Flip:
    """tests/targets/code_flip.py, steered line by line."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, str(FLIP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.facts = json.loads(self.proc.stdout.readline())

    def set(self, state: str) -> None:
        self.proc.stdin.write(state + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.mark.parametrize("interp", recordable(), ids=str)
def test_a_code_that_stops_reading_is_forgotten_once(interp: Interpreter) -> None:
    """The accounting itself, on a real process held at each state: a code that no
    longer reads is one reuse, however often it is checked, and stacks naming it are
    unreadable; read again, it is the code it is now, never a ref from before."""
    flip = _Flip(interp.path)
    target = open_target(flip.proc.pid)
    try:
        written: dict[int, CodeInfo] = {}
        refs = CodeRefs(CodeReader(target), written.__setitem__)
        a, b = flip.facts["a"], flip.facts["b"]

        def filename(stack: list[int] | None) -> str | None:
            return None if stack is None else written[stack[0]].filename

        both, alone = refs.refs_many([[a, b]]), refs.refs_many([[a]])
        assert filename(both[0]) == filename(alone[0]) == flip.facts["file"]
        assert refs.reused == 0
        flip.set("bogus")
        for _ in range(3):
            assert refs.refs_many([[a], [b]])[0] is None
        assert refs.reused == 1  # counted once: it was 3, one per check
        flip.set("other")
        assert filename(refs.refs_many([[a]])[0]) == "other_file.py"
        assert refs.reused == 1  # a code read again, not a reuse of a recorded one
        flip.set("good")
        # (a, b) was last seen whole with these very bytes: the ref it had then names
        # a code read since, under another file name.
        assert filename(refs.refs_many([[a, b]])[0]) == flip.facts["file"]
        assert refs.reused == 2
    finally:
        target.close()
        flip.close()


def test_flip_target_restores_itself() -> None:
    """The steered target really changes what a reader sees (the test above is live)."""
    flip = _Flip(sys.executable)
    target = open_target(flip.proc.pid)
    try:
        reader = CodeReader(target)
        a = flip.facts["a"]
        assert reader.read_code(a).filename == flip.facts["file"]
        flip.set("other")
        assert reader.read_code(a).filename == "other_file.py"
    finally:
        target.close()
        flip.close()


def test_the_sample_is_checked_again_once_at_most() -> None:
    """A reuse found while checking a sample's codes makes one more check of it, with no
    remembered stack ids; a reuse found by that check too (a target that rewrites its
    code objects all the time, not paused) is not a reason for a third."""
    flip = _Flip(sys.executable)
    target = open_target(flip.proc.pid)
    try:
        rec = sampler.Recorder(target, io.BytesIO(), sampler.RecordOptions(pausing=False))
        stacks = rec.walker.walk()
        assert any(st.frames for st in stacks)
        checks = []
        check = rec.codes.refs_many

        def every_check_finds_a_reuse(*args):
            checks.append(args)
            got = check(*args)
            rec.codes.reused += 1
            return got

        rec.codes.refs_many = every_check_finds_a_reuse
        refs = rec._check_codes(stacks)
        assert len(checks) == 2  # the check and one more; it recursed without end
        assert any(r for r in refs)  # the second check's refs are kept
        assert rec._memo_reused == rec.codes.reused  # the next sample starts afresh
    finally:
        target.close()
        flip.close()

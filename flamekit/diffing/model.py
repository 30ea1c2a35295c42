"""The diff model: two filtered profiles matched frame by frame, as counts per stack.

Two recordings never share code refs, addresses or instruction offsets (another run,
another interpreter, another machine), so frames are matched by what a person would call
"the same function": its qualified name and its file, and at ``--lines`` granularity its
source line as well. Everything after matching is arithmetic on sample counts, so the
model stores only the merged stacks ``(frame keys, root first) -> (count a, count b)``
and derives the ranking from them.

A few details make recordings of the *same code* in different settings match:

* Python before 3.11 records no ``co_qualname``, so a method is ``run`` there and
  ``Worker.run`` on 3.11+. When either side lacks qualified names, both sides match on
  the plain name.
* The standard library and installed packages live under version- and machine-specific
  prefixes (``/usr/lib/python3.11/json/decoder.py`` vs ``.../python3.12/json/...``).
  The matching key (never the displayed label) drops those prefixes.
* ``--threads`` roots stacks at the thread; TIDs differ from run to run, so thread roots
  match by the thread's name.
* A process tree's stacks are rooted at their process; pids differ from run to run, so
  process roots match by *role*: the command lines from the recorded tree's top down to
  the process. A prefork server's workers all have the role "server > server": its four
  workers today match its four workers yesterday, respawned ones included, whatever
  their pids.

Shares are fractions of each side's *selected* samples, so recordings of different
lengths or sampling rates compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Union

from flamekit.analysis.filters import Selection
from flamekit.analysis.profile import EMPTY, PROCESS, PYTHON, THREAD, Frame, cap_name
from flamekit.analysis.ranking import check_by, order, tally_rooted
from flamekit.trace import Trace

#: A frame's matching identity. ``("python", function, file key, line or None)``,
#: ``("thread", thread name)``, ``("process", command, ...)`` (a role, and with
#: ``--threads`` then ``"thread", name``) or ``("empty",)``.
Key = tuple[Union[str, int, None], ...]
#: A matched stack: frame keys, root (outermost) first.
StackKey = tuple[Key, ...]
#: A matched stack with its thread root kept apart: (the root's key or None, the stack).
RootedKey = tuple[Optional[Key], StackKey]

_SITE = re.compile(r"^.*/(?:site|dist)-packages/")
_STDLIB = re.compile(r"^.*/lib/(?:pypy|python)\d+(?:\.\d+)?[a-z]*/")


def file_key(path: str) -> str:
    """The part of a file name that identifies it across interpreters and machines.

    Installed packages become ``<site-packages>/pkg/mod.py`` and the standard library
    ``<stdlib>/json/decoder.py``; anything else (the program's own files) is kept as is,
    since there is no way to tell two checkouts of the same project apart from two
    projects.
    """
    m = _SITE.match(path)
    if m:
        return "<site-packages>/" + path[m.end() :]
    m = _STDLIB.match(path)
    if m:
        return "<stdlib>/" + path[m.end() :]
    return path


@dataclass(frozen=True)
class Side:
    """What the header says about one side: which file, how long, how many samples."""

    path: str
    duration_ns: int
    samples: int  #: samples in the trace
    selected: int  #: samples the filters kept: the denominator of every share
    python_version: str
    truncated: bool


@dataclass(frozen=True)
class Row:
    """One matched frame (a function, or a line with ``--lines``) and its counts.

    ``self_*``: samples where it was the innermost frame; ``total_*``: samples where it
    was anywhere on the stack, once per sample however deep the recursion. Shares are
    percentages of each side's selected samples; differences are b minus a, in
    percentage points (positive: it takes a larger share in b, i.e. it grew).
    """

    key: Key
    frame: Frame
    self_a: int
    self_b: int
    total_a: int
    total_b: int
    n_a: int
    n_b: int

    @property
    def status(self) -> str:
        """``both``, ``added`` (only in b) or ``removed`` (only in a)."""
        if self.total_a and self.total_b:
            return "both"
        return "added" if self.total_b else "removed"

    @property
    def self_pct_a(self) -> float:
        return 100.0 * self.self_a / self.n_a

    @property
    def self_pct_b(self) -> float:
        return 100.0 * self.self_b / self.n_b

    @property
    def total_pct_a(self) -> float:
        return 100.0 * self.total_a / self.n_a

    @property
    def total_pct_b(self) -> float:
        return 100.0 * self.total_b / self.n_b

    @property
    def self_diff(self) -> float:
        """Change in self share, b - a, in percentage points."""
        return self.self_pct_b - self.self_pct_a

    @property
    def total_diff(self) -> float:
        """Change in total (inclusive) share, b - a, in percentage points."""
        return self.total_pct_b - self.total_pct_a


@dataclass
class Diff:
    """Two selections matched: per merged stack the sample count on each side.

    ``frames`` gives each key the frame to display (b's where b has it, so labels show
    the newer file paths); ``lines`` says which granularity the keys have. ``rooted``
    holds the counts per (thread root key or None, stack without it): a stack run by many
    threads is one tuple, not a copy per thread (``--threads`` over 1,000 threads of one
    65,536-frame stack made 524 MB of copies); :attr:`stacks` makes the rooted stacks.
    """

    a: Side
    b: Side
    lines: bool
    frames: dict[Key, Frame]
    rooted: dict[RootedKey, tuple[int, int]]

    @cached_property
    def stacks(self) -> dict[StackKey, tuple[int, int]]:
        """Counts per merged stack, its thread root (with ``--threads``) first."""
        return {
            sk if root is None else (root, *sk): counts
            for (root, sk), counts in self.rooted.items()
        }

    def label(self, key: Key) -> str:
        """The display label of a key: ``function (file[:line])`` or the synthetic name."""
        return self.frames[key].label()

    def rows(self, by: str = "self") -> list[Row]:
        """Every matched frame, most changed first (see :func:`rank`)."""
        return rank(self, by)


class _Stack(tuple[Key, ...]):
    """A matched stack's keys: a tuple that computes its hash once. Tuples hash their
    items at every dict lookup, and a 65,536-frame stack of key tuples took 1.7 ms to
    hash: ``diff --threads`` over 1,000 threads of it spent 27 s doing just that."""

    def __hash__(self) -> int:
        h: int | None = self.__dict__.get("hash")
        if h is None:
            h = self.__dict__["hash"] = tuple.__hash__(self)
        return h


def _side(sel: Selection) -> Side:
    tr = sel.profile.trace
    return Side(tr.path, tr.duration_ns, len(tr), len(sel), tr.header.python_version, tr.truncated)


def role(trace: Trace, thread_ref: int) -> tuple[tuple[str, ...], ...]:
    """The role of a thread's process: its command line after those of its recorded
    ancestors, top first. Stable across runs of the same program where pids are not."""
    run = trace.run_of(thread_ref)
    chain = [run.process.cmdline]
    seen = {run.pid}
    ppid = run.process.ppid
    while ppid in trace.processes and ppid not in seen:  # (a corrupt file may loop)
        seen.add(ppid)
        parent = trace.processes[ppid]
        chain.append(parent.cmdline)
        ppid = parent.ppid
    return tuple(reversed(chain))


def role_label(chain: tuple[tuple[str, ...], ...]) -> str:
    """``process COMMAND > COMMAND``: how a diff names a role."""
    return "process " + " > ".join(cap_name(" ".join(cmd)) or "?" for cmd in chain)


def _has_qualnames(sel: Selection) -> bool:
    """Whether the recording carries qualified names (Python 3.11+ records them)."""
    return any(c.qualname is not None for c in sel.profile.trace.codes.values())


def _matched_counts(
    sel: Selection, lines: bool, by_qualname: bool, same: dict[_Stack, _Stack]
) -> tuple[dict[RootedKey, int], dict[Key, Frame]]:
    """A selection's sample counts per matched (root, stack), and a frame for each key.

    ``same`` holds one object per distinct stack, shared by both sides: a dict compares
    keys of equal hash item by item unless they are the same object."""
    prof = sel.profile
    frame_keys: dict[int, Key] = {}
    frames: dict[Key, Frame] = {}

    def key_of(fid: int) -> Key:
        k = frame_keys.get(fid)
        if k is None:
            f = prof.frames[fid]
            if f.kind == PYTHON:
                k = (PYTHON, f.qualname if by_qualname else f.name, file_key(f.file), f.line)
            else:
                k = (f.kind,)  # the empty-stack frame; thread roots are keyed below
            frame_keys[fid] = k
            frames.setdefault(k, f)
        return k

    root_keys: dict[int, Key] = {}

    def root_key(ref: int) -> Key:
        """The thread's root (see Selection.root_frame), keyed by role and thread name."""
        k = root_keys.get(ref)
        if k is None:
            t = prof.trace.threads.get(ref)
            name = cap_name(t.name) if t is not None and t.name is not None else "?"
            if sel.per_process:
                chain = role(prof.trace, ref)
                k, label, kind = (
                    (PROCESS, *(cap_name(" ".join(c)) for c in chain)),
                    role_label(chain),
                    PROCESS,
                )
                if sel.options.threads:
                    k, label = (*k, THREAD, name), f"{label} / thread {name}"
            else:
                k, label, kind = (THREAD, name), f"thread {name}", THREAD
            root_keys[ref] = k
            frames.setdefault(k, Frame(label, label, "", None, kind))
        return k

    out: dict[RootedKey, int] = {}
    stack_keys: dict[int, tuple[Key, ...]] = {}
    for (thread, sid), n in sel.raw_counts().items():
        sk = stack_keys.get(sid)
        if sk is None:
            sk = _Stack(key_of(f) for f in prof.stack(sid, lines))
            sk = stack_keys[sid] = same.setdefault(sk, sk)
        key = (root_key(thread) if thread >= 0 else None, sk)
        out[key] = out.get(key, 0) + n
    return out, frames


def build_diff(sel_a: Selection, sel_b: Selection, lines: bool = False) -> Diff:
    """Match two selections' frames and count each merged stack on both sides.

    ``lines``: match and report source lines (``function (file:line)``) rather than
    functions. Both selections must be non-empty (a share of nothing is undefined); the
    command reports an empty selection before getting here.
    """
    if not len(sel_a) or not len(sel_b):
        raise ValueError("build_diff needs a non-empty selection on both sides")
    by_qualname = _has_qualnames(sel_a) and _has_qualnames(sel_b)
    if sel_a.per_process != sel_b.per_process and not sel_a.options.merge_processes:
        # One side a process tree, the other one process: root both by role, so that the
        # one process matches its role in the tree rather than nothing at all.
        sel_a, sel_b = (Selection(s.profile, s.options, s.indices, True) for s in (sel_a, sel_b))
    same: dict[_Stack, _Stack] = {}
    counts_a, frames_a = _matched_counts(sel_a, lines, by_qualname, same)
    counts_b, frames_b = _matched_counts(sel_b, lines, by_qualname, same)
    frames = {**frames_a, **frames_b}  # b's frame wins where both have one
    # a's stacks, then b's others, in the order the samples met them: not a set's order,
    # which follows string hashes, so that a's counts scaled to b's total (ties in the
    # rounding go to the earlier stack) come out the same on every run.
    rooted: dict[RootedKey, tuple[int, int]] = {}
    for sk in [*counts_a, *counts_b]:
        if sk not in rooted:
            rooted[sk] = (counts_a.get(sk, 0), counts_b.get(sk, 0))
    return Diff(_side(sel_a), _side(sel_b), lines, frames, rooted)


def rank(diff: Diff, by: str = "self") -> list[Row]:
    """Every matched frame as a Row, ranked by the size of the change in its share.

    ``by`` "self" ranks by the change in self share (where the time itself went: the
    default, since a caller's total moves with every callee), "total" by the change in
    inclusive share. Counting and ordering are :mod:`flamekit.analysis.ranking`'s, as
    for ``top``: ties go to the larger change of the other kind, then the larger share
    of the ``by`` kind, then the label, so the order is deterministic.
    """
    key = check_by(by)
    n_a, n_b = diff.a.selected, diff.b.selected
    a = tally_rooted((rk, ca) for rk, (ca, _) in diff.rooted.items())
    b = tally_rooted((rk, cb) for rk, (_, cb) in diff.rooted.items())
    rows = [Row(k, diff.frames[k], sa, b[k][0], ta, b[k][1], n_a, n_b) for k, (sa, ta) in a.items()]
    labels = {r.key: r.frame.label() for r in rows}
    if key == "self":
        share = lambda r: max(r.self_pct_a, r.self_pct_b)  # noqa: E731
    else:
        share = lambda r: max(r.total_pct_a, r.total_pct_b)  # noqa: E731
    return order(
        rows,
        key,
        lambda r: abs(r.self_diff),
        lambda r: abs(r.total_diff),
        lambda r: (-share(r), labels[r.key], repr(r.key)),
    )


#: Kinds of frame a key can have (re-exported for the outputs).
KINDS = (PYTHON, THREAD, PROCESS, EMPTY)

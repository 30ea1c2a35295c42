"""The output budget: how big an output would be, known before any of it is written.

A trace is small and its outputs need not be: every format repeats a stack's frames, per
distinct stack, per thread (``--threads``) or per sample (speedscope), and a stack may be
65,536 frames deep. A 3 MB trace made 10.7 GB of cpuprofile, and 1.1 MB made 10.5 GB of
speedscope, before anything stopped them. So each format *estimates* its size from the
shape of the selection (distinct stacks, their depth and samples, the length of each
frame's label), without making the output, and an output over the budget is refused in
one line that gives the estimate and the option that raises the budget. The writer
(:func:`flamekit.output.write_output`) also stops at the budget, for any estimate that
fell short.

The estimates are upper bounds, close for real profiles: a line per rooted stack is
counted exactly but for merges; the call tree's nodes exactly (:meth:`Shape.tree`);
numbers by their digits, where a sum of many is bounded through their total.

:data:`DEFAULT_MAX_OUTPUT` is 1 GiB:

* twice what a viewer in a browser can open at all: speedscope, Chrome DevTools and an
  SVG flame graph are read into one JavaScript string, which V8 caps at 2^29 - 24
  characters (about 512 MiB);
* about three times the largest output of a one-hour recording at 1 kHz (3.6 million
  samples, stacks up to 40 deep: speedscope 372 MB, cpuprofile 99 MB, collapsed 13 MB);
* at the slowest format's pace (an SVG of millions of frames: 12 MB/s on a loaded
  2-core machine) under a minute and a half of work, and a format that holds its call
  tree (cpuprofile, SVG: about 1.4 to 2 bytes of memory per byte of output) stays
  under 2 GB.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from flamekit.analysis.filters import Rooted, Selection
from flamekit.errors import UsageError
from flamekit.output import OutputTooLarge

#: The most bytes an output may have unless the caller says otherwise (``--max-output``).
DEFAULT_MAX_OUTPUT = 1 << 30

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
    "m": 1 << 20, "mib": 1 << 20, "mb": 1000**2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int | None:
    """A size as ``--max-output`` takes it: bytes, or with K, M, G, T (powers of 1024;
    KiB... alike; KB, MB, GB, TB are powers of 1000). ``0`` means no budget: None."""
    m = _SIZE.fullmatch(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise UsageError(f"--max-output: {text!r} is not a size (e.g. 500M, 2G, 3.5GiB, 0)")
    size = int(float(m.group(1)) * unit)
    return size or None


def format_size(n: int) -> str:
    """``n`` bytes for a person: 1.5 GiB, 320 MiB, 12 KiB, 500 bytes."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{n:,} bytes"


def option_for(n: int) -> str:
    """The ``--max-output`` value that lets ``n`` bytes through, rounded up."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{math.ceil(n / scale)}{unit}"
    return str(n)


class Estimate(NamedTuple):
    """How many bytes an output would have: an upper bound for real profiles, or, with
    ``at_least``, a count that stopped once past the budget (the output is bigger)."""

    size: int
    at_least: bool = False


def counting_limit(budget: int | None) -> int | None:
    """Where an estimate may stop counting: past the budget, and never below the default
    one, so that a small budget still gets an exact size to suggest; None: never."""
    return None if budget is None else max(budget, DEFAULT_MAX_OUTPUT)


def check(what: str, estimate: Estimate, budget: int | None) -> None:
    """:class:`~flamekit.output.OutputTooLarge` if the ``estimate`` of ``what`` is over
    ``budget`` (None: no budget)."""
    if budget is not None and estimate.size > budget:
        if estimate.at_least:
            size, lift = f"at least {format_size(estimate.size)}", "0 writes it whatever its size"
        else:
            size, lift = (
                f"about {format_size(estimate.size)}",
                f"{option_for(estimate.size)} writes it",
            )
        raise OutputTooLarge(
            f"{what} would be {size}, over the {format_size(budget)} output budget "
            f"(--max-output {lift}; --thread, --from and --until make it smaller)"
        )


def digits(n: int) -> int:
    """Characters of ``n`` written in decimal."""
    return len(str(n))


def digits_of_many(count: int, total: int) -> int:
    """At most the characters of ``count`` non-negative integers that add up to ``total``.

    Each has at most log10(x + 1) + 1 digits, and log10 is concave, so the sum is at most
    ``count * (log10((total + count) / count) + 1)`` (Jensen), reached when all are equal.
    """
    if count <= 0:
        return 0
    return math.ceil(count * (math.log10((max(total, 0) + count) / count) + 1))


def varint_size(n: int) -> int:
    """Bytes of ``n`` as a protocol-buffers / LEB128 varint."""
    return max(1, (n.bit_length() + 6) // 7)


#: Bytes one character of a name can take in an output, at most: JSON escapes a character
#: outside the BMP to two ``\\uXXXX`` (12 bytes); UTF-8, XML entities and visible escapes
#: take at most 6.
JSON_CHAR = 12
TEXT_CHAR = 6


class Facts(NamedTuple):
    """What bounds every output of a selection without a pass over its samples: a ceiling
    on an estimate (:meth:`Shape` counts exactly, for a cost per sample). A real profile's
    ceiling is far under the budget, and its exact estimate is then not needed."""

    samples: int
    threads: int  #: in the trace
    stacks: int  #: distinct stack ids in the trace
    frames: int  #: sum of their depths (the frames of every stack)
    deepest: int
    labels: int  #: characters of a frame's names and file, or a thread's label, at most


def facts(sel: Selection, lines: bool) -> Facts:
    prof = sel.profile
    depths = [len(prof.stack(sid, lines)) for sid in prof.stacks]
    tr = prof.trace
    longest = max((len(f.name) + len(f.qualname) + len(f.file) for f in prof.frames), default=0)
    thread = max((len(t.name or "") for t in tr.threads.values()), default=0)
    return Facts(
        len(sel),
        max(1, len(tr.threads)),
        len(depths),
        sum(depths),
        max(depths, default=0),
        max(longest, thread + 30) + 20,
    )


def ceiling_fits(ceiling: int, budget: int | None) -> bool:
    """Whether a ceiling shows the output within ``budget`` (so the exact estimate can be
    skipped)."""
    return budget is not None and ceiling <= budget


class Shape:
    """What a selection's outputs are made of, counted without making them.

    ``rooted``: samples per (thread root or None, stack) (:meth:`Selection.rooted_counts`);
    per-stack sums of a per-frame cost are computed once per distinct stack, so a cost over
    every line or node of an output is a sum over distinct rooted stacks, never over their
    frames again.
    """

    def __init__(self, sel: Selection, lines: bool = True) -> None:
        self.sel = sel
        self.profile = sel.profile
        self.rooted: dict[Rooted, int] = sel.rooted_counts(lines)
        self._stacks = {id(stack): stack for _, stack in self.rooted}

    @property
    def samples(self) -> int:
        return len(self.sel)

    @property
    def stacks(self) -> list[tuple[int, ...]]:
        """The distinct stacks (without roots)."""
        return list(self._stacks.values())

    def frames(self) -> set[int]:
        """Every frame id on a selected stack, roots included."""
        used: set[int] = set()
        for stack in self._stacks.values():
            used.update(stack)
        used.update(root for root, _ in self.rooted if root is not None)
        return used

    def costs(self, cost: Callable[[int], int]) -> list[int]:
        """``cost`` of every frame id of the profile (0 for frames on no selected stack)."""
        out = [0] * len(self.profile.frames)
        for fid in self.frames():
            out[fid] = cost(fid)
        return out

    def per_stack(self, costs: Sequence[int]) -> dict[int, int]:
        """Per distinct stack (keyed by ``id()``): the sum of its frames' costs."""
        get = costs.__getitem__
        return {key: sum(map(get, stack)) for key, stack in self._stacks.items()}

    def lines(self, costs: Sequence[int], per_line: Callable[[int], int]) -> int:
        """Bytes of an output with a line per rooted stack: the frames' costs, the root's,
        and ``per_line(samples)`` for what else the line holds."""
        sums = self.per_stack(costs)
        return sum(
            sums[id(stack)] + (0 if root is None else costs[root]) + per_line(n)
            for (root, stack), n in self.rooted.items()
        )

    def repeated(self, costs: Sequence[int], per_copy: int) -> int:
        """Bytes of an output that writes a rooted stack once per sample: its frames' and
        root's costs and ``per_copy`` more, times its samples."""
        sums = self.per_stack(costs)
        return sum(
            n * (sums[id(stack)] + (0 if root is None else costs[root]) + per_copy)
            for (root, stack), n in self.rooted.items()
        )

    def tree(self, costs: Sequence[int], limit: int) -> tuple[int, int, bool]:
        """(nodes, the sum of their frames' costs, whether counting stopped at ``limit``
        nodes) of the call tree of the rooted stacks: one tree per root (per thread with
        ``--threads``) under a common root, which is not counted.

        The nodes of a tree are its stacks' distinct prefixes: with the stacks sorted, each
        adds the frames past what it shares with the one before. No tree is built, so a
        tree of 65 million nodes is counted (and refused) in the time of its prefixes.
        """
        groups: dict[int | None, set[tuple[int, ...]]] = {}
        for root, stack in self.rooted:
            groups.setdefault(root, set()).add(stack)
        nodes = total = 0
        for root, stacks in groups.items():
            if root is not None:
                nodes += 1
                total += costs[root]
            prev: tuple[int, ...] = ()
            for stack in sorted(stacks):
                shared = _common_prefix(prev, stack)
                nodes += len(stack) - shared
                total += sum(map(costs.__getitem__, stack[shared:]))
                if nodes > limit:
                    return nodes, total, True
                prev = stack
        return nodes, total, False


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """The length of the longest common prefix of two tuples (bisected: each probe is one
    comparison in C, and a stack may be 65,536 frames deep)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo

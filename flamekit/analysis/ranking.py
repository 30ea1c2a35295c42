"""One ranking of frames by self and total samples, for ``top``, ``diff`` and the API.

*Self* samples of a frame are those where it is the innermost frame (it was running);
*total* samples those where it is anywhere on the stack (it or its callees were
running), counted once per sample however deep the recursion. ``top`` ranks one profile's
frames by these counts; ``diff`` ranks two profiles' frames by the change in their
shares. Both count with :func:`tally` and order with :func:`order`, so the two commands
agree on what self and total mean and on how ties fall.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from flamekit.analysis.filters import Selection
from flamekit.errors import UsageError

#: What a ranking can be ordered by.
By = Literal["self", "total"]
BY: tuple[By, ...] = ("self", "total")

K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=Hashable)
T = TypeVar("T")


def check_by(by: str) -> By:
    """``by`` itself if it names an order; a UsageError naming the choices otherwise."""
    for choice in BY:
        if by == choice:
            return choice
    raise UsageError(f"rank by 'self' or 'total', not {by!r}")


def tally(stacks: Iterable[tuple[Sequence[K], int]]) -> dict[K, list[int]]:
    """Per frame of weighted stacks (leaf last): ``[self, total]`` samples.

    Every frame of every stack gets an entry, even with a zero weight, so that two
    profiles' tallies of the same stacks have the same keys.
    """
    acc: dict[K, list[int]] = {}
    for stack, n in stacks:
        leaf = stack[-1]
        c = acc.get(leaf)
        if c is None:
            c = acc[leaf] = [0, 0]
        c[0] += n
        for k in set(stack):
            c = acc.get(k)
            if c is None:
                c = acc[k] = [0, 0]
            c[1] += n
    return acc


def tally_rooted(
    stacks: Iterable[tuple[tuple[R | None, Sequence[K]], int]],
) -> dict[K | R, list[int]]:
    """:func:`tally` of weighted stacks whose root is kept apart (``(root or None, stack)``).

    A root (a thread) is on every sample of its stacks and is the leaf of none (a stack is
    never empty), so it gets ``[0, its samples]``; the stacks are tallied once with their
    weights summed over roots, never copied under each root.
    """
    merged: dict[Sequence[K], int] = {}
    roots: dict[R, int] = {}
    for (root, stack), n in stacks:
        merged[stack] = merged.get(stack, 0) + n
        if root is not None:
            roots[root] = roots.get(root, 0) + n
    acc: dict[K | R, list[int]] = dict(tally(merged.items()))
    for root, n in roots.items():
        acc[root] = [0, n]
    return acc


def order(
    rows: list[T],
    by: By,
    self_of: Callable[[T], float],
    total_of: Callable[[T], float],
    then: Callable[[T], tuple],
) -> list[T]:
    """Sort ``rows`` in place, largest first by the ``by`` measure, then by the other one,
    then by ``then`` (ascending: a deterministic tie-break such as the label)."""
    first, second = (self_of, total_of) if by == "self" else (total_of, self_of)
    rows.sort(key=lambda r: (-first(r), -second(r), *then(r)))
    return rows


@dataclass(frozen=True)
class Row:
    """One ranked frame: its id in the profile, and its self and total sample counts."""

    frame: int
    self_samples: int
    total_samples: int


def rank(sel: Selection, lines: bool = False, by: str = "self") -> list[Row]:
    """Every frame of a selection with its self and total counts, most first.

    ``lines``: rank lines (``function (file:line)``) rather than functions. Ties go to
    the larger count of the other kind, then to the label, so the order is deterministic.
    """
    key = check_by(by)
    counts = tally_rooted(sel.rooted_counts(lines=lines).items())
    label = sel.profile.label
    rows = [Row(f, s, t) for f, (s, t) in counts.items()]
    return order(
        rows, key, lambda r: r.self_samples, lambda r: r.total_samples, lambda r: (label(r.frame),)
    )

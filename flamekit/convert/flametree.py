"""A flame graph's tree, walked from its stacks sorted instead of built node by node.

A flame graph merges weighted stacks (root first) into a tree. Built as a trie, it costs
a node object per distinct prefix, drawn or not: a 32 MB trace of deep stacks is 16
million of them. Here the stacks are sorted once, and a node is the run of sorted stacks
that share its path: its value is a difference of prefix sums, and its children are the
runs of their next frame, found by bisection. So a walk costs a step per node it visits,
the tree is never held, and a walk that keeps only frames wide enough to draw never
visits what is too narrow (nor anything under it).

Frames are small integers (a caller interns richer keys), so that stacks sort as tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate


class SortedStacks:
    """Distinct stacks (tuples of frame ints, root first), sorted, with running sums of
    one or more weights per stack."""

    __slots__ = ("stacks", "sums")

    def __init__(self, weighted: Iterable[tuple[tuple[int, ...], Sequence[int]]]) -> None:
        items = sorted(weighted)
        self.stacks = [s for s, _ in items]
        width = len(items[0][1]) if items else 1
        self.sums = [list(accumulate((w[i] for _, w in items), initial=0)) for i in range(width)]

    def __len__(self) -> int:
        return len(self.stacks)

    def value(self, lo: int, hi: int, i: int = 0) -> int:
        """Weight ``i`` of stacks ``lo`` to ``hi`` (exclusive)."""
        s = self.sums[i]
        return s[hi] - s[lo]

    def runs(self, lo: int, hi: int, depth: int) -> Iterator[tuple[int, int, int]]:
        """(frame, lo, hi) for each child of the node of stacks ``lo``..``hi`` sharing
        their first ``depth`` frames: the runs of their frame at ``depth``. The one stack
        that ends at ``depth`` (the node's own samples) comes first and is skipped."""
        stacks = self.stacks
        i = lo
        while i < hi and len(stacks[i]) <= depth:
            i += 1
        while i < hi:
            frame = stacks[i][depth]
            a, b = i + 1, hi
            while a < b:
                mid = (a + b) // 2
                if stacks[mid][depth] == frame:
                    a = mid + 1
                else:
                    b = mid
            yield frame, i, a
            i = a

    def own(self, lo: int, hi: int, depth: int, i: int = 0) -> int:
        """Weight ``i`` of the stack among ``lo``..``hi`` that ends at ``depth`` (0: none)."""
        return self.value(lo, lo + 1, i) if lo < hi and len(self.stacks[lo]) == depth else 0


def count_drawn(
    groups: Iterable[tuple[int | None, SortedStacks]],
    costs: Sequence[int],
    min_value: float,
    limit: int,
) -> tuple[int, int, bool]:
    """(nodes, the sum of their frames' costs, stopped) of a flame graph's drawn frames:
    nodes of weight (the first) at least ``min_value`` and above 0, under a root per group
    (a group's root, when not None, is a node of the group's whole weight). Counting stops
    past ``limit`` nodes. A run of one stack is a chain of nodes of one weight: counted at
    once, so a 65,536-frame stack costs one step."""
    nodes = total = 0
    for root, st in groups:
        if not len(st):
            continue
        if root is not None:
            if st.value(0, len(st)) < min_value:
                continue
            nodes += 1
            total += costs[root]
        work = [(0, len(st), 0)]
        while work:
            lo, hi, depth = work.pop()
            for _, a, b in st.runs(lo, hi, depth):
                v = st.value(a, b)
                if v <= 0 or v < min_value:
                    continue
                if b - a == 1:
                    chain = st.stacks[a][depth:]
                    nodes += len(chain)
                    total += sum(map(costs.__getitem__, chain))
                else:
                    nodes += 1
                    total += costs[st.stacks[a][depth]]
                    work.append((a, b, depth + 1))
                if nodes > limit:
                    return nodes, total, True
    return nodes, total, False

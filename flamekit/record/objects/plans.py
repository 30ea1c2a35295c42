"""Reads of many objects as few system calls: read plans run side by side.

Reading an object takes a few dependent steps (its header, then its characters or its
table, then its items), and what each step reads depends on the last. Written one object
at a time, that is a system call per step and object. Here each object's reader is a
*plan*: a generator that yields the ranges it needs next and is sent their bytes (None
for a range that could not be read) until it returns its result::

    def plan(addr):
        head = yield from read(addr, 32)       # one range
        if head is None:
            return None
        data = yield from read(addr + 32, size_in(head))
        ...
        return value

:func:`together` runs many plans in lockstep, so step k of every plan is ONE gathered
read (:func:`gather`: nearby ranges merged into one, since the kernel charges per range),
and a plan can itself run sub-plans together (a tuple's items, a dict's keys). So a
batch of objects costs as many system calls as its deepest object has steps.

The result checks (:data:`Check`) are the other half: whatever a value was read from can
be read again in one call (:func:`hold`) to confirm that it did not change meanwhile.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, NamedTuple, Optional, TypeVar, cast

from flamekit.record.bounds import MAX_RANGE, MERGE_GAP, USER_SPACE_END
from flamekit.record.objects.parse import live
from flamekit.record.proc.memory import ProcessMemory

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
Range = tuple[int, int]
Reply = list[Optional[bytes]]
#: A read plan: yields the ranges it needs, is sent their bytes, returns its result.
Plan = Generator[list[Range], Reply, T]


class Check(NamedTuple):
    """Bytes a value was read from, to be read again to confirm it still holds.

    ``live``: the first 8 bytes are an object's reference count, which may change but
    must still look live (see parse.live); the rest must be the same."""

    address: int
    data: bytes
    live: bool = False


_new = tuple.__new__


def check(address: int, data: bytes, live: bool = False) -> Check:
    """A Check, made several times faster than by its class (a NamedTuple's generated
    constructor): a lookup makes a hundred or more."""
    return _new(Check, (address, data, live))


def read(address: int, size: int) -> Plan[bytes | None]:
    """Plan step: ``size`` bytes at ``address`` (None if unreadable)."""
    reply = yield [(address, size)]
    return reply[0]


def together(plans: Sequence[Plan[T]]) -> Plan[list[T]]:
    """Plan: the results of ``plans``, run in lockstep (their ranges read together)."""
    if len(plans) == 1:
        return [(yield from plans[0])]
    results: dict[int, T] = {}
    active: list[tuple[int, Plan[T], list[Range]]] = []
    for i, plan in enumerate(plans):
        try:
            active.append((i, plan, next(plan)))
        except StopIteration as done:
            results[i] = done.value
    while active:
        ranges: list[Range] = []
        for _, _, want in active:
            ranges += want
        reply = yield ranges
        pos = 0
        still = []
        for i, plan, want in active:
            end = pos + len(want)
            try:
                still.append((i, plan, plan.send(reply[pos:end])))
            except StopIteration as done:
                results[i] = done.value
            pos = end
        active = still
    return [results[i] for i in range(len(plans))]


def pair(first: Plan[A], second: Plan[B]) -> Plan[tuple[A, B]]:
    """Plan: the results of two plans of different result types, run in lockstep."""
    got: list[Any] = yield from together([cast("Plan[Any]", first), cast("Plan[Any]", second)])
    return got[0], got[1]


def run(memory: ProcessMemory, plan: Plan[T]) -> T:
    """Carry out ``plan`` against the target's memory."""
    try:
        want = next(plan)
        while True:
            want = plan.send(gather(memory, want))
    except StopIteration as done:
        return done.value


def gather(memory: ProcessMemory, ranges: Sequence[Range]) -> Reply:
    """Each range's bytes (None if unreadable), in as few vectored reads as possible.

    The kernel charges per range (about 1 us each, against a few ns per byte), so
    ranges closer than MERGE_GAP are read as one span. A span that fails is retried
    range by range, and the kernel stops at the first unreadable range, which is
    skipped: a garbage pointer costs a system call or two, never the batch."""
    out: Reply = [None] * len(ranges)
    todo = []
    for i, (a, n) in enumerate(ranges):
        if 0 < n <= MAX_RANGE and 0xFFFF < a < USER_SPACE_END:
            todo.append((a, a + n, i))
        elif n == 0:
            out[i] = b""
    if not todo:
        return out
    todo.sort()
    spans: list[Range] = []
    members: list[list[tuple[int, int, int]]] = []
    start, end, group = todo[0][0], todo[0][1], [todo[0]]
    for item in todo[1:]:
        a, b, _ = item
        if a <= end + MERGE_GAP and b - start <= MAX_RANGE:
            group.append(item)
            if b > end:
                end = b
        else:
            spans.append((start, end - start))
            members.append(group)
            start, end, group = a, b, [item]
    spans.append((start, end - start))
    members.append(group)
    retry: list[tuple[int, int, int]] = []
    for (start, _), group, data in zip(spans, members, _read_each(memory, spans)):
        if data is None:
            if len(group) > 1:
                retry.extend(group)
            continue
        for a, b, i in group:
            out[i] = data[a - start : b - start]
    if retry:
        got = _read_each(memory, [(a, b - a) for a, b, _ in retry])
        for (_, _, i), data in zip(retry, got):
            out[i] = data
    return out


def _read_each(memory: ProcessMemory, ranges: Sequence[Range]) -> Reply:
    """Each range's bytes, None for the unreadable ones (skipped, the rest retried)."""
    out: Reply = [None] * len(ranges)
    done = 0
    while done < len(ranges):
        data, k = memory.read_ranges_partial(ranges[done:])
        pos = 0
        for j in range(done, done + k):
            n = ranges[j][1]
            out[j] = data[pos : pos + n]
            pos += n
        done += k + 1
    return out


def hold(memory: ProcessMemory, groups: Sequence[Iterable[Check]]) -> list[bool]:
    """For each group of checks, whether all of them read back as expected, in one
    vectored read: then the values they came with were all there at one instant.

    Checks shared by several groups (a dict's table, a class's shared keys) are read
    once, and nearby ones are read as one range (see gather)."""
    owners: dict[Check, list[int]] = {}
    for g, checks in enumerate(groups):
        for check in checks:
            owners.setdefault(check, []).append(g)
    unique = list(owners)
    got = gather(memory, [(c.address, len(c.data)) for c in unique])
    ok = [True] * len(groups)
    for check, now in zip(unique, got):
        data = check.data
        if now == data or (check.live and now is not None and live(now) and now[8:] == data[8:]):
            continue
        for g in owners[check]:
            ok[g] = False
    return ok

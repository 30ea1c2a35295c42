"""Any object as a Python value, within limits: the read plan behind ObjectReader.values.

Made for rendering a frame's local variables: what a local holds is not known in
advance, so the object's header is read first (large enough for every kind's fields),
its kind found from its type, and the kind's own reader takes over. A container's items
are read together, a level of the graph per step, down to ``Limits.depth``; past it a
container is only its length (an empty :class:`Partial`).

Kinds: str, bytes, int, bool, float, tuple, list, dict, set, frozenset (the first eight
with their "fast" subclasses,
read as the base: a namedtuple is a tuple), None, types (:class:`TypeRef`); anything
else is an :class:`Opaque` with its type's name. 2.7's str is bytes, its unicode str.
A dict is a dict when every key read is hashable and distinct (keys of a real dict
are; two that decode alike, say a str subclass with its own hash, or a dict cut by the
limit, give a Partial of (key, value) pairs). A split dict's items come in its class's
key order. A set is a set on the same terms (else a Partial of its items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from flamekit.record.bounds import bad_pointer
from flamekit.record.objects import dicts
from flamekit.record.objects.offsets import (
    BOOL,
    BYTES,
    DICT,
    FLOAT,
    FROZENSET,
    INT,
    LIST,
    SET,
    STR,
    TUPLE,
    TYPE,
)
from flamekit.record.objects.parse import Q, q
from flamekit.record.objects.plans import Check, Plan, check, read, together
from flamekit.record.objects.values import Limits, Opaque, Partial, Read, TypeRef, Value

if TYPE_CHECKING:
    from flamekit.record.objects.reader import ObjectReader

    _Decoder = Callable[[ObjectReader, int, bytes, str, Limits, int], Plan[Read[Value] | None]]

#: Slots of a dict's table read per item wanted (tables have holes: deleted entries,
#: and 2.7's open addressing), plus a few.
_SLOTS_PER_ITEM = 4
_EXTRA_SLOTS = 16
#: Most slots of a set's table read (1 MiB of entries): its items are spread by hash, so
#: the first few may be anywhere in it.
_MAX_SET_SLOTS = 1 << 16


def value_plan(
    reader: ObjectReader, addr: int, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """The object at ``addr`` as a value; None if it cannot be read at all."""
    if addr and addr == reader.types.get("_Py_NoneStruct"):
        return Read(None, ())
    head = yield from reader.object_plan(addr, reader.any_head)
    if head is None:
        return None
    tp = reader.type_of(head)
    kind = yield from reader.kind_plan(tp)
    decode = _DECODERS.get(kind) if kind is not None else None
    if decode is not None:
        return (yield from decode(reader, addr, head, kind or "", limits, depth))
    name = yield from reader.type_name_plan(tp)
    checks = (reader.header_check(addr, head, reader.offsets.ob_type + 8),)
    return Read(Opaque(addr, None if name is None else name.value), checks)


def _text_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """A str or bytes (2.7's str): its first ``limits.chars``."""
    if kind == STR:
        body = yield from reader.text_body(addr, head, kind, limits.chars, False)
    else:
        body = yield from reader.bytes_body(addr, head, limits.chars)
    if body is None:
        return None
    if body.whole:
        return Read(body.value, body.checks)
    return Read(Partial(type(body.value), body.value, body.length), body.checks)


def _int_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    got = yield from reader.int_body(addr, head)
    if got is None:
        return None
    return Read(bool(got.value) if kind == BOOL else got.value, got.checks)


def _float_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """(A plan that reads nothing more: the header holds the value.)"""
    yield from ()
    number = reader.float_body(addr, head)
    return Read(number.value, number.checks)


def _type_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    name = yield from reader.type_name_plan(addr)
    if name is None:
        return None
    check = reader.header_check(addr, head, reader.offsets.ob_type + 8)
    return Read(TypeRef(addr, name.value), (check, *name.checks))


def _items_plan(
    reader: ObjectReader, addrs: Sequence[int], limits: Limits, depth: int
) -> Plan[tuple[list[Value], tuple[Check, ...]]]:
    """The values of many objects, and all their checks; one that cannot be read is an
    Opaque without a type name."""
    got = yield from together([value_plan(reader, a, limits, depth) for a in addrs])
    values: list[Value] = []
    checks: list[Check] = []
    for a, item in zip(addrs, got):
        if item is None:
            values.append(Opaque(a, None))
        else:
            values.append(item.value)
            checks.extend(item.checks)
    return values, tuple(checks)


def _sequence_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """A tuple or list: its first ``limits.items``, each read a level deeper."""
    python_type: type = tuple if kind == TUPLE else list
    if depth <= 0:
        length = reader.sequence_length(head)
        if length is None:
            return None
        return Read(
            Partial(python_type, python_type(), length),
            (reader.header_check(addr, head, reader.items_head),),
        )
    got = yield from reader.items_body(addr, head, kind, limits.items)
    if got is None:
        return None
    items = got.value
    values, checks = yield from _items_plan(reader, items.addresses, limits, depth - 1)
    value: Any = python_type(values)
    if len(values) < items.length:
        value = Partial(python_type, value, items.length)
    return Read(value, got.checks + checks)


def _dict_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """A dict: its first ``limits.items`` items, keys and values a level deeper."""
    used = reader.dict_length(head)
    if used is None:
        return None
    if depth <= 0:
        return Read(Partial(dict, (), used), (reader.header_check(addr, head, reader.dict_head),))
    slots = _SLOTS_PER_ITEM * limits.items + _EXTRA_SLOTS
    got = yield from dicts.dict_body(reader, addr, head, slots)
    if got is None:
        return None
    entries = got.value[: limits.items]
    flat = [a for e in entries for a in (e.key, e.value)]
    values, checks = yield from _items_plan(reader, flat, limits, depth - 1)
    pairs = tuple(zip(values[::2], values[1::2]))
    entry_checks = tuple(c for e in entries for c in e.checks())
    checks = (
        reader.header_check(addr, head, reader.dict_head),
        *got.checks,
        *entry_checks,
        *checks,
    )
    try:
        whole = dict(pairs)
    except TypeError:  # an unhashable key (a cut tuple's list head...)
        return Read(Partial(dict, pairs, used), checks)
    if len(whole) != len(pairs) or len(pairs) != used:
        return Read(Partial(dict, pairs, used), checks)
    return Read(whole, checks)


def _set_plan(
    reader: ObjectReader, addr: int, head: bytes, kind: str, limits: Limits, depth: int
) -> Plan[Read[Value] | None]:
    """A set or frozenset: its first ``limits.items`` keys, a level deeper.

    The table is read from its start, a doubling run of slots at a time, until it gave
    that many keys (or ends, or _MAX_SET_SLOTS); a deleted slot holds the dummy key with
    hash -1 (3.x), which no live key has."""
    off = reader.offsets
    python_type: type = set if kind == SET else frozenset
    assert off.set_used is not None and off.set_mask is not None and off.set_table is not None
    assert off.set_entry_size is not None and off.set_entry_key is not None
    assert off.set_entry_hash is not None
    (used,) = q.unpack_from(head, off.set_used)
    (mask,) = q.unpack_from(head, off.set_mask)
    (table,) = Q.unpack_from(head, off.set_table)
    if not 0 <= used <= mask < 1 << 32 or bad_pointer(table):
        return None
    header = reader.header_check(addr, head, reader.set_head)
    if depth <= 0:
        return Read(Partial(python_type, (), used), (header,))
    size = off.set_entry_size
    want = min(limits.items, used)
    keys: list[int] = []
    table_checks: list[Check] = []
    start, slots = 0, _SLOTS_PER_ITEM * limits.items + _EXTRA_SLOTS
    while len(keys) < want and start <= mask:  # sparse by hash: read on until enough
        n = min(slots, mask + 1 - start, _MAX_SET_SLOTS - start)
        if n <= 0:
            break
        data = yield from read(table + start * size, n * size)
        if data is None:
            return None
        table_checks.append(check(table + start * size, data))
        for at in range(0, len(data), size):
            (key,) = Q.unpack_from(data, at + off.set_entry_key)
            (hash_,) = q.unpack_from(data, at + off.set_entry_hash)
            if key and hash_ != -1:
                if bad_pointer(key):
                    return None
                keys.append(key)
        start += n
        slots *= 2
    keys = keys[: min(limits.items, used)]
    values, checks = yield from _items_plan(reader, keys, limits, depth - 1)
    all_checks = (header, *table_checks, *checks)
    try:
        whole = python_type(values)
    except TypeError:  # an unhashable item (a cut tuple's list head...)
        return Read(Partial(python_type, tuple(values), used), all_checks)
    if len(whole) != len(values) or len(values) != used:
        return Read(Partial(python_type, tuple(values), used), all_checks)
    return Read(whole, all_checks)


#: How each kind of object becomes a value.
_DECODERS: dict[str, _Decoder] = {
    STR: _text_plan,
    BYTES: _text_plan,
    INT: _int_plan,
    BOOL: _int_plan,
    FLOAT: _float_plan,
    TUPLE: _sequence_plan,
    LIST: _sequence_plan,
    DICT: _dict_plan,
    TYPE: _type_plan,
    SET: _set_plan,
    FROZENSET: _set_plan,
}

"""Finding one object by name: a dict's value by key, an instance's attribute, a module's
dict, an interpreter's sys.modules. Read plans for ObjectReader (reader.py).

A str key is matched by its text: each candidate key's characters are read (most come
with their header, see SPECULATE) and compared. Attribute and module names are interned,
so every dict holding one shares the one str object: once matched, its address is
remembered (per name) and a dict holding it needs none of its keys read. Its header (up
to its hash) then joins the result's checks, so an address reused by another str fails
them. In a split dict (an instance's, sharing its class's keys) the name's index in the
shared keys is remembered too, and only that one value is read.

An int key is matched the way the interpreter's own lookup starts: a dict stores each
key's hash, and an int's hash is a function of its value (parse.int_hash), so only the
entries whose hash is a wanted one have their key read.

Where an instance keeps its attributes differs between versions, and is chosen from
which offsets the table has: a dict at tp_dictoffset; from 3.11 a managed dict or
values before the object header (3.11: two words; 3.12: one word, odd for values); from
3.13 values inline in the object (3.13 at a fixed offset, 3.14 at tp_basicsize), valid
while the object has no dict. Values are indexed by the class's shared keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flamekit.record.bounds import bad_pointer
from flamekit.record.objects import dicts, parse
from flamekit.record.objects.parse import Q
from flamekit.record.objects.plans import Check, Plan, check, read, together
from flamekit.record.objects.values import Entry, Read

if TYPE_CHECKING:
    from flamekit.record.objects.reader import ObjectReader, TypeInfo

#: Str objects remembered per name as equal to it (an interned name: one or two).
MAX_EQUAL_CACHED = 64


def equal_keys_plan(reader: ObjectReader, keys: Sequence[int], name: str) -> Plan[dict[int, bytes]]:
    """Which of ``keys`` are str objects equal to ``name``: {address: the header's first
    bytes as read, up to its hash}.

    A key remembered as equal is taken without reading anything; otherwise every key
    is read (one step for all), and the matches are remembered. What is kept of the
    header is what names the str (refcount, type, length, hash; PEP 393's state), not
    the caches a str fills in later (3.x utf8, <= 3.11 wstr), so the check holds for as
    long as the str lives."""
    known = reader.equal_keys.setdefault(name, {})
    hits = {k: known[k] for k in keys if k in known}
    if hits:
        return hits
    todo = sorted({k for k in keys if not bad_pointer(k)})
    texts = yield from together([reader.str_plan(k, length=len(name)) for k in todo])
    for k, text in zip(todo, texts):
        if text is not None and text.value == name:
            hits[k] = text.checks[0].data[: reader.key_identity]
    if len(known) + len(hits) > MAX_EQUAL_CACHED:
        known.clear()
    known.update(hits)
    return hits


def _key_checks(entry: Entry, head: bytes) -> tuple[Check, ...]:
    """An entry's words, and its key's header as it was matched."""
    return (*entry.checks(), check(entry.key, head, True))


def lookup_plan(reader: ObjectReader, addr: int, key: str) -> Plan[Read[int] | None]:
    """The value (an object address) under the str ``key`` in the dict at ``addr``.

    A split dict (an instance's: 3.6-3.10 always, 3.11+ once its dict is made) shares
    its class's keys: the key's index there is found once (and kept), and only that
    value is read, not the whole table."""
    head = yield from reader.dict_head_plan(addr)
    if head is None:
        return None
    split = reader.dict_format.split(head)
    if split is not None:
        keys, values = split
        found = reader.shared_index.get((keys, key))
        if found is None:
            found = yield from _shared_index_plan(reader, keys, key)
            if found is None:
                return None
        index, key_checks = found
        value = yield from dicts.value_slot_plan(reader, values, index)
        if value is None:
            return None
        table = reader.dict_format.table_checks(addr, head)
        return Read(value[0], table + key_checks + value[1])
    got = yield from dicts.dict_body(reader, addr, head, dicts.MAX_DICT_ENTRIES)
    if got is None:
        return None
    hits = yield from equal_keys_plan(reader, [e.key for e in got.value], key)
    for e in got.value:
        if e.key in hits:
            return Read(e.value, got.checks + _key_checks(e, hits[e.key]))
    return None


def int_lookup_plan(
    reader: ObjectReader, addr: int, keys: set[int]
) -> Plan[dict[int, Read[int]] | None]:
    """{key: value address} for those of the int ``keys`` in the dict at ``addr``."""
    got = yield from reader.dict_plan(addr)
    if got is None:
        return None
    hashes = {parse.int_hash(k, reader.py2) for k in keys}
    cands = [e for e in got.value if e.hash in hashes or None in hashes]
    ints = yield from together([reader.int_plan(e.key) for e in cands])
    out = {}
    for e, n in zip(cands, ints):
        if n is not None and n.value in keys:
            out[n.value] = Read(e.value, got.checks + e.checks())
    return out


def module_dict_plan(reader: ObjectReader, addr: int) -> Plan[Read[int] | None]:
    """A module object's __dict__ (md_dict)."""
    off = reader.offsets
    head = yield from reader.object_plan(addr, off.module_dict + 8)
    module_type = reader.type_address("PyModule_Type")
    if head is None or not module_type or reader.type_of(head) != module_type:
        return None
    (md_dict,) = Q.unpack_from(head, off.module_dict)
    if bad_pointer(md_dict):
        return None
    return Read(md_dict, (reader.header_check(addr, head, off.module_dict + 8),))


def modules_plan(reader: ObjectReader, interp: int) -> Plan[Read[int] | None]:
    """sys.modules of the interpreter whose PyInterpreterState is at ``interp``."""
    at = interp + reader.offsets.interp_modules
    word = None if bad_pointer(interp) else (yield from read(at, 8))
    if word is None or bad_pointer(Q.unpack(word)[0]):
        return None
    return Read(Q.unpack(word)[0], (check(at, word),))


# -- instance attributes ---------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where one instance keeps its attributes right now."""

    dict: int = 0  #: an attribute dict, or
    values: int = 0  #: a values array indexed by the class's shared keys
    keys: int = 0  #: ... those shared keys
    inline: bool = False  #: the values live inside the object (3.13+): check ``valid``
    checks: tuple[Check, ...] = ()  #: the pointer words that led here


def attribute_plan(reader: ObjectReader, obj: int, name: str) -> Plan[Read[int] | None]:
    """The value (an object address) of the attribute ``name`` of an instance of a class
    (a heap type), from its dict or its values; None where it has none of that name."""
    off = reader.offsets
    # Bytes before the object that hold its managed dict / values (3.11+).
    pre = -min([0, *(v for v in (off.managed_dict, off.managed_values) if v is not None)])
    if bad_pointer(obj):
        return None
    raw = yield from read(obj - pre, pre + off.ob_type + 8)
    if raw is None or not parse.live(raw[pre:]):
        return None
    head = raw[pre:]
    tp = reader.type_of(head)
    info = yield from reader.type_plan(tp)
    if info is None or not _instance_type(reader, info):
        return None
    src = yield from _source_plan(reader, obj, raw, pre, info)
    if src is None:
        return None
    checks = (*src.checks, reader.header_check(obj, head, off.ob_type + 8))
    if src.dict:
        got = yield from lookup_plan(reader, src.dict, name)
        return None if got is None else Read(got.value, checks + got.checks)
    found = reader.shared_index.get((src.keys, name))
    if found is None:
        found = yield from _shared_index_plan(reader, src.keys, name)
        if found is None:
            return None
    index, key_checks = found
    checks += key_checks
    if off.heap_cached_keys is not None:  # the class still shares those keys
        checks += (check(tp + off.heap_cached_keys, Q.pack(src.keys)),)
    value = yield from dicts.value_slot_plan(reader, src.values, index, src.inline)
    return None if value is None else Read(value[0], checks + value[1])


def _shared_index_plan(
    reader: ObjectReader, keys: int, name: str
) -> Plan[tuple[int, tuple[Check, ...]] | None]:
    """Where ``name`` is in a class's shared keys: (its index, checks on its entry).

    Kept between calls: shared keys only grow (a class's instances keep their values by
    these indices), and the checks, re-read with every value found this way, catch a
    keys object freed and made again at the same address."""
    shared = yield from dicts.keys_plan(reader, keys, 0)
    hits = yield from equal_keys_plan(reader, [e.key for e in shared or ()], name)
    entry = next((e for e in shared or () if e.key in hits), None)
    if entry is None:
        return None
    found = (entry.slot, (entry.checks()[0], check(entry.key, hits[entry.key], True)))
    if len(reader.shared_index) >= MAX_EQUAL_CACHED:
        reader.shared_index.clear()
    reader.shared_index[(keys, name)] = found
    return found


def _instance_type(reader: ObjectReader, info: TypeInfo) -> bool:
    """A class defined in Python: a heap type of sane size, whose instances have their
    attributes where this module looks."""
    off = reader.offsets
    if not info.flags & off.tpflags_heaptype:
        return False
    return 16 <= info.basicsize <= 1 << 16 and not info.basicsize & 7


def _source_plan(
    reader: ObjectReader, obj: int, raw: bytes, pre: int, info: TypeInfo
) -> Plan[Source | None]:
    """Where the instance whose bytes from ``obj - pre`` are ``raw`` keeps its attributes."""
    off = reader.offsets
    managed = off.tpflags_managed_dict or 0
    if managed and info.flags & managed:
        return _managed_source(reader, obj, raw, pre, info)
    if not 0 < info.dictoffset <= 1 << 16:
        return None
    at = obj + info.dictoffset
    word = yield from read(at, 8)
    if word is None:
        return None
    (d,) = Q.unpack(word)
    return None if bad_pointer(d) else Source(dict=d, checks=(check(at, word),))


def _managed_source(
    reader: ObjectReader, obj: int, raw: bytes, pre: int, info: TypeInfo
) -> Source | None:
    """Where a 3.11+ object with a managed dict keeps its attributes right now."""
    off = reader.offsets
    assert off.managed_dict is not None
    at = obj + off.managed_dict
    (word,) = Q.unpack_from(raw, pre + off.managed_dict)
    checks: tuple[Check, ...] = (check(at, Q.pack(word)),)
    if off.managed_values_tag:  # 3.12: one word, odd means values
        if word & off.managed_values_tag:
            values = word + (off.managed_values_adjust or 0)
            return _values_source(values, info, checks)
        return Source(dict=word, checks=checks) if not bad_pointer(word) else None
    if word:
        return Source(dict=word, checks=checks) if not bad_pointer(word) else None
    if off.managed_values is not None:  # 3.11: a second word for the values
        (values,) = Q.unpack_from(raw, pre + off.managed_values)
        checks += (check(obj + off.managed_values, Q.pack(values)),)
        return _values_source(values, info, checks)
    inline_flag = off.tpflags_inline_values or 0
    if inline_flag and info.flags & inline_flag:  # 3.13+: values inside the object
        if off.inline_values_at_basicsize:
            values = obj + info.basicsize
        elif off.inline_values_offset is not None:
            values = obj + off.inline_values_offset
        else:
            return None
        return _values_source(values, info, checks, inline=True)
    return None


def _values_source(
    values: int, info: TypeInfo, checks: tuple[Check, ...], inline: bool = False
) -> Source | None:
    if bad_pointer(values) or not info.cached_keys:
        return None
    return Source(values=values, keys=info.cached_keys, inline=inline, checks=checks)

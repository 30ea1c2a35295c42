"""A dict's table, read from the target: which entries are used, and where they are.

Three shapes, chosen by which offsets the table has:

* 2.7: one open-addressing table of ``mask + 1`` (hash, key, value) slots, pointed to by
  the dict object;
* 3.6-3.10: a keys object (dk_size slots of indices, then the entries in insertion
  order), and for a split dict (instances of one class sharing their keys) a separate
  values array;
* 3.11+: the same with sizes as log2 bytes, and entries without the hash where every key
  is a str; split values in a PDictValues (3.13+: after a capacity byte).

:class:`DictFormat` decodes bytes (pure, per interpreter); the plans read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flamekit.record.bounds import USER_SPACE_END, bad_pointer
from flamekit.record.objects import parse
from flamekit.record.objects.offsets import Offsets
from flamekit.record.objects.parse import Q, q
from flamekit.record.objects.plans import Check, Plan, check, read
from flamekit.record.objects.values import Entry, Read

if TYPE_CHECKING:
    from flamekit.record.objects.reader import ObjectReader

#: Most slots of a dict's table read (a sys.modules or instance dict has hundreds at
#: most): 6 MiB of entries at 24 bytes each.
MAX_DICT_ENTRIES = 1 << 18


class DictFormat:
    """How one interpreter lays out its dict tables (from its offsets)."""

    def __init__(self, off: Offsets, py2: bool) -> None:
        self.off = off
        #: The dict's words that point at its table: unchanged, the same table.
        if py2:
            assert off.dict_mask is not None and off.dict_table is not None
            self.words = (off.dict_mask, off.dict_table)
        else:
            assert off.dict_keys is not None and off.dict_values is not None
            self.words = (off.dict_keys, off.dict_values)
        self.py2 = py2
        self.hashed = parse.entry_struct(
            off.entry_size, off.entry_hash, off.entry_key, off.entry_value
        )
        self.unhashed = self.hashed
        if off.unicode_entry_size is not None:
            assert off.unicode_entry_key is not None and off.unicode_entry_value is not None
            self.unhashed = parse.entry_struct(
                off.unicode_entry_size, None, off.unicode_entry_key, off.unicode_entry_value
            )

    def table_checks(self, addr: int, head: bytes) -> tuple[Check, ...]:
        """Checks on the words of the dict at ``addr`` that point at its table."""
        return tuple(check(addr + w, head[w : w + 8]) for w in self.words)

    def split(self, head: bytes) -> tuple[int, int] | None:
        """(shared keys, values) of a 3.x split dict (an instance's, sharing its class's
        keys), else None."""
        if self.py2:
            return None
        keys, values = (Q.unpack_from(head, w)[0] for w in self.words)
        if not values or bad_pointer(keys) or bad_pointer(values):
            return None
        return keys, values

    def keys_layout(self, h: bytes) -> tuple[int, int, int, bool] | None:
        """(entries offset, entry size, entry count, entries hold hashes) from a 3.x
        keys object's header, or None if it cannot be one."""
        off = self.off
        assert off.keys_nentries is not None and off.keys_indices is not None
        (n,) = q.unpack_from(h, off.keys_nentries)
        if off.keys_size is not None:  # 3.6-3.10: dk_size, index width from it
            (size,) = q.unpack_from(h, off.keys_size)
            if size < 1 or size & (size - 1) or size > 2 * MAX_DICT_ENTRIES:
                return None
            start = off.keys_indices + size * parse.dict_index_width(size)
            esize, hashed = off.entry_size, True
        else:  # 3.11+: log2 sizes, and entries with or without the hash
            assert off.keys_log2_size is not None and off.keys_log2_index_bytes is not None
            assert off.keys_kind is not None and off.unicode_entry_size is not None
            log2_size = h[off.keys_log2_size]
            log2_bytes = h[off.keys_log2_index_bytes]
            kind = h[off.keys_kind]
            if not log2_size <= log2_bytes <= log2_size + 3 or kind > 2:
                return None
            size = 1 << log2_size
            if size > 2 * MAX_DICT_ENTRIES:
                return None
            start = off.keys_indices + (1 << log2_bytes)
            hashed = kind == off.keys_kind_general
            esize = off.entry_size if hashed else off.unicode_entry_size
        if not 0 <= n <= size or n > MAX_DICT_ENTRIES:
            return None
        return start, esize, n, hashed

    def entries(
        self,
        data: bytes,
        n: int,
        hashed: bool,
        at: int,
        vals: bytes | None,
        vals_at: int,
        need_value: bool,
    ) -> tuple[Entry, ...]:
        """Used entries (a key, and with ``need_value`` a value) of the entries array
        read from ``at``; values from ``vals`` (read from ``vals_at``) for a split dict."""
        off = self.off
        st, (hi, ki, vi) = self.hashed if hashed else self.unhashed
        esize = st.size
        if hashed:
            koff, voff = off.entry_key, off.entry_value
        else:
            assert off.unicode_entry_key is not None and off.unicode_entry_value is not None
            koff, voff = off.unicode_entry_key, off.unicode_entry_value
        values = None if vals is None else [w for (w,) in Q.iter_unpack(vals[: 8 * n])]
        out = []
        new = tuple.__new__  # an Entry without the NamedTuple constructor's call: hot
        end = USER_SPACE_END
        for ix, row in enumerate(st.iter_unpack(data[: n * esize])):
            key = row[ki]
            if key & 7 or key <= 0xFFFF or key >= end:  # bad_pointer, inlined
                continue
            entry_at = at + ix * esize
            if values is None:
                value, value_at = row[vi], entry_at + voff
            else:
                value, value_at = values[ix], vals_at + 8 * ix
            if need_value and (value & 7 or value <= 0xFFFF or value >= end):
                continue  # deleted (3.6-3.10 keep a dummy key), or not set on this instance
            stored = row[hi] if hi >= 0 else -1
            out.append(new(Entry, (ix, stored, key, value, entry_at + koff, value_at)))
        return tuple(out)


def dict_body(
    reader: ObjectReader, addr: int, head: bytes, limit: int
) -> Plan[Read[tuple[Entry, ...]] | None]:
    """Used entries of the dict whose header is ``head`` (in its table's first ``limit``
    slots). The checks are the dict's words that point at its table."""
    off = reader.offsets
    if reader.py2:  # one open-addressing table of mask + 1 (hash, key, value) slots
        assert off.dict_mask is not None and off.dict_table is not None
        (mask,) = q.unpack_from(head, off.dict_mask)
        (table,) = Q.unpack_from(head, off.dict_table)
        if mask < 0 or mask + 1 > MAX_DICT_ENTRIES or (mask + 1) & mask or bad_pointer(table):
            return None
        n = min(mask + 1, limit)
        data = yield from reader.span_plan(addr, head, table, n * off.entry_size)
        if data is None:
            return None
        entries: tuple[Entry, ...] | None = reader.dict_format.entries(
            data, n, True, table, None, 0, True
        )
    else:
        assert off.dict_keys is not None and off.dict_values is not None
        (keys,) = Q.unpack_from(head, off.dict_keys)
        (values,) = Q.unpack_from(head, off.dict_values)
        if bad_pointer(keys) or (values and bad_pointer(values)):
            return None
        entries = yield from keys_plan(reader, keys, values, limit)
    if entries is None:
        return None
    return Read(entries, reader.dict_format.table_checks(addr, head))


def value_slot_plan(
    reader: ObjectReader, values: int, index: int, inline: bool = False
) -> Plan[tuple[int, tuple[Check, ...]] | None]:
    """The value at ``index`` of a split table's values (an object address; None if it
    has none there), and the checks on it. 3.13+: the values' capacity byte bounds the
    index, and ``inline`` values (inside an instance) count only while marked valid."""
    off = reader.offsets
    array = off.values_array or 0
    slot = array + 8 * index
    data = yield from read(values, slot + 8)
    if data is None:
        return None
    checks: tuple[Check, ...] = ()
    if off.values_valid is not None:
        if index >= data[0] or (inline and not data[off.values_valid]):
            return None
        if inline:
            valid = data[off.values_valid : off.values_valid + 1]
            checks = (check(values + off.values_valid, valid),)
    (value,) = Q.unpack_from(data, slot)
    if bad_pointer(value):
        return None
    return value, (*checks, check(values + slot, Q.pack(value)))


def keys_plan(
    reader: ObjectReader, keys: int, values: int, limit: int = MAX_DICT_ENTRIES
) -> Plan[tuple[Entry, ...] | None]:
    """Entries of a 3.x keys object, with their values from ``values`` (a split
    table's values) where that is nonzero.

    With ``values`` 0 for a shared-keys object this lists its keys (value 0 each),
    which is how an instance's attribute index is found."""
    off = reader.offsets
    fmt = reader.dict_format
    assert off.keys_indices is not None
    h = yield from read(keys, off.keys_indices)
    layout = None if h is None else fmt.keys_layout(h)
    if layout is None:
        return None
    start, esize, n, hashed = layout
    n = min(n, limit)
    if n == 0:
        return ()
    at = keys + start
    if not values:
        data = yield from read(at, n * esize)
        return None if data is None else fmt.entries(data, n, hashed, at, None, 0, False)
    # A split table: its values too (3.13+: after a capacity byte, which bounds the
    # indices they hold; a class's keys may have grown since).
    array = off.values_array or 0
    data, vals = yield [(at, n * esize), (values, array + 8 * n)]
    if data is None or vals is None:
        return None
    if off.values_valid is not None:
        n = min(n, vals[0])
    return fmt.entries(data, n, hashed, at, vals[array:], values + array, True)

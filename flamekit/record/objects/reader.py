"""ObjectReader: CPython objects of a live target, read from outside, many at a time.

One reader per target. Each kind of object has a read plan (see plans.py) that starts
from the object's address; the batch methods (:meth:`ObjectReader.strs`, ``ints``,
``values``...) run one plan per address side by side, so a batch costs a few system
calls whatever its size. Every result is a :class:`~.values.Read` (the value and the
checks that confirm it) or None: the address is not an object of that kind, or is not
readable, or its bytes cannot be what they claim. Garbage never raises; a target that
is gone raises its TargetError, as every read of it does.

What is recognised how:

* a type by its address (ELF symbols); a subclass of str, bytes, int, tuple, list, dict
  or type by its type's "fast subclass" flag (its instances have the base's layout);
* every pointer by its shape before it is followed, every count and size against a
  bound below (and bounds.py), every header by its reference count (parse.live).

Lookups by key and instance attributes are in lookups.py, object graphs within limits
(for a frame's locals) in graph.py; the batch methods for them are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, TypeVar

from flamekit.errors import TargetError
from flamekit.record.bounds import bad_address, bad_pointer
from flamekit.record.objects import dicts, graph, lookups, parse
from flamekit.record.objects.dicts import MAX_DICT_ENTRIES
from flamekit.record.objects.offsets import (
    BOOL,
    BYTES,
    CELL,
    DICT,
    EXACT_KINDS,
    FLOAT,
    INT,
    LIST,
    STR,
    TUPLE,
    TYPE,
    TYPE_SYMBOLS,
    Offsets,
    offsets_for,
    type_addresses,
)
from flamekit.record.objects.parse import D, Q, q
from flamekit.record.objects.plans import Check, Plan, check, hold, read, run, together
from flamekit.record.objects.values import Entry, Limits, Read, Value
from flamekit.record.target import PythonTarget

T = TypeVar("T")

#: Bytes read past a header in the same range, so that a short str, bytes or int (most
#: names, most line tables, every thread ident) comes whole in one step.
SPECULATE = 64
#: Most bytes of characters of a str, or of a bytes object, read (names, files and line
#: tables are far shorter; a longer one is cut, or refused where it must be whole).
MAX_DATA_BYTES = 1 << 20
#: Most digits of an int: 122,880 bits, far past CPython's own str() limit (4,300
#: decimal digits, about 476 digits); 16 KiB of digits.
MAX_INT_DIGITS = 1 << 12
#: How a 2.7 str's bytes that are not UTF-8 decode, by ``utf8_safe``: as Python 3 holds
#: such bytes (surrogate escapes); for a trace, which must be UTF-8, as the visible text
#: ``\xNN`` (2.7 code and thread names are byte strings: Latin-1 ones are real).
_PY2_ERRORS = {False: "surrogateescape", True: "backslashreplace"}
#: Most items a tuple or list, or characters a str, can claim before the count is called
#: garbage (32 GiB of item pointers), and most item addresses read from one.
MAX_LENGTH = 1 << 32
MAX_ITEMS = 1 << 16
#: Longest type name (tp_name, a C string) read.
MAX_TYPE_NAME = 1024
#: Type facts and type names kept between calls (cleared when full, or by forget()).
MAX_TYPES_CACHED = 256
_PAGE = 4096
DEFAULT_LIMITS = Limits()


_new = tuple.__new__  # a NamedTuple without its constructor's Python call (hot paths)


class Body(NamedTuple):
    """What a kind's reader made of an object: its value (cut to a limit), its real
    length (characters, bytes or items), whether the value is all of it, the checks."""

    value: Any
    length: int
    whole: bool
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class TypeInfo:
    """What a type object says about its instances."""

    flags: int
    basicsize: int
    dictoffset: int
    cached_keys: int  #: PyHeapTypeObject.ht_cached_keys (0: none, or not a heap type)
    name_at: int  #: tp_name, a C string


class Items(NamedTuple):
    """Item addresses of a tuple or list: the first ones, its kind and real length."""

    addresses: tuple[int, ...]
    kind: str  #: TUPLE or LIST
    length: int


def _text_layout(off: Offsets, py2: bool) -> parse.TextLayout:
    """Where this interpreter's str headers keep their facts (2.7: its unicode's)."""
    if py2:
        assert off.py2_unicode_length is not None and off.py2_unicode_str is not None
        assert off.py2_unicode_char_size is not None
        return parse.TextLayout(
            length=off.py2_unicode_length,
            data=off.py2_unicode_str,
            char_size=off.py2_unicode_char_size,
        )
    assert off.unicode_length is not None and off.unicode_state is not None
    assert off.unicode_kind_shift is not None and off.unicode_compact_shift is not None
    assert off.unicode_ascii_shift is not None and off.unicode_data is not None
    assert off.unicode_ascii_size is not None and off.unicode_compact_size is not None
    return parse.TextLayout(
        length=off.unicode_length,
        data=off.unicode_data,
        state=off.unicode_state,
        kind_shift=off.unicode_kind_shift,
        compact_shift=off.unicode_compact_shift,
        ascii_shift=off.unicode_ascii_shift,
        ascii_size=off.unicode_ascii_size,
        compact_size=off.unicode_compact_size,
    )


class ObjectReader:
    """Reads CPython objects of one target (see the module docstring).

    Cheap to create: offsets and type addresses are found at the first read. Not
    thread-safe (the target's memory reader is not)."""

    def __init__(self, target: PythonTarget) -> None:
        self.target = target
        self.memory = target.memory
        self.py2 = target.layout.version[0] == 2
        self._off: Offsets | None = None
        self._broken = False
        #: type symbol -> address; the walker's own first, the rest from the ELF on demand
        self.types = {n: a for n, a in target.symbols.items() if n in TYPE_SYMBOLS}
        self._elf_types = False
        self._kinds: dict[int, str] = {}
        self._type_cache: dict[int, TypeInfo | None] = {}
        self._name_cache: dict[int, Read[str]] = {}
        #: name -> {address of a str equal to it: its header as read}: see lookups.py
        self.equal_keys: dict[str, dict[int, bytes]] = {}
        #: (a class's shared keys, name) -> the name's index there, and its checks
        self.shared_index: dict[tuple[int, str], tuple[int, tuple[Check, ...]]] = {}

    # -- set-up ------------------------------------------------------------------------

    @property
    def off(self) -> Offsets | None:
        """The target's offsets; None if they cannot be had (then nothing is read)."""
        if self._off is None and not self._broken:
            try:
                self.configure(offsets_for(self.target))
            except (LookupError, ValueError):  # no table for it, or a corrupt one
                self._broken = True
            except TargetError:  # 3.13+ debug offsets unreadable now: next time
                pass
        return self._off

    @property
    def offsets(self) -> Offsets:
        """The offsets, for a plan (plans run only once ``off`` gave them)."""
        assert self._off is not None
        return self._off

    def configure(self, off: Offsets) -> None:
        """Use ``off``, and precompute what follows from it (read sizes, entry structs)."""
        self._off = off
        self._ob_type = off.ob_type
        self.text_layout = _text_layout(off, self.py2)
        #: A str's header up to its hash (and 3.x's state): what names it (lookups.py).
        #: 2.7: a str's size, hash and state; a unicode's length, pointer and hash.
        if self.py2:
            assert off.py2_unicode_hash is not None
            self.key_identity = max(off.bytes_data, off.py2_unicode_hash + 8)
        else:
            self.key_identity = self.text_layout.state + 4
        self.str_head = self.text_layout.data + 8
        if self.py2:
            self.str_head = max(off.bytes_data, self.str_head)
        self.int_head = off.long_digits + 8
        self.float_head = off.float_value + 8
        self.items_head = max(off.tuple_items, off.list_items + 8)
        words = [off.dict_used, off.dict_keys, off.dict_values, off.dict_mask, off.dict_table]
        self.dict_head = max(w for w in words if w is not None) + 8
        set_words = [off.set_used, off.set_mask, off.set_table, off.cell_ref, off.ob_type]
        self.set_head = max(w for w in set_words if w is not None) + 8
        self.any_head = max(
            self.str_head, off.bytes_data, self.int_head, self.float_head, self.items_head,
            self.dict_head, self.set_head,
        )  # fmt: skip
        type_words = [off.type_name, off.type_flags, off.type_basicsize, off.type_dictoffset]
        self._type_short = max(type_words) + 8
        self._type_read = max(self._type_short, (off.heap_cached_keys or 0) + 8)
        self.dict_format = dicts.DictFormat(off, self.py2)
        subclass_flags = [
            (off.tpflags_unicode_subclass, STR),
            (off.tpflags_bytes_subclass, BYTES),
            (off.tpflags_long_subclass, INT),
            (off.tpflags_int_subclass or 0, INT),
            (off.tpflags_tuple_subclass, TUPLE),
            (off.tpflags_list_subclass, LIST),
            (off.tpflags_dict_subclass, DICT),
            (off.tpflags_type_subclass, TYPE),
        ]
        self._subclass_flags = [(f, k) for f, k in subclass_flags if f]
        self._kinds = self._exact_kinds()

    def _exact_kinds(self) -> dict[int, str]:
        return {self.types[n]: k for n, k in EXACT_KINDS.items() if self.types.get(n)}

    def type_address(self, name: str) -> int:
        """The address of a type symbol (0: unknown)."""
        if name not in self.types:
            self.read_type_symbols()
        return self.types.get(name, 0)

    def read_type_symbols(self) -> None:
        """Every one of TYPE_SYMBOLS, from the interpreter's ELF, once: only when one
        not among the walker's own symbols is wanted (a code record's str and bytes
        need none; the ELF's symbol table takes milliseconds to read)."""
        if self._elf_types:
            return
        self._elf_types = True
        try:
            self.types.update(type_addresses(self.target))
        except (LookupError, OSError, ValueError):
            pass
        self._kinds = self._exact_kinds()

    def forget(self) -> None:
        """Drop what is cached about types and names: a caller whose values keep failing
        their checks suspects it, and everything is read again next time."""
        self._type_cache.clear()
        self._name_cache.clear()
        self.equal_keys.clear()
        self.shared_index.clear()

    # -- running plans -----------------------------------------------------------------

    def run(self, plan: Plan[T]) -> T:
        """Carry out a plan (from the ``*_plan`` methods, or :func:`together` of them)."""
        return run(self.memory, plan)

    def _batch(self, plan: Callable[[int], Plan[T | None]], addrs: Sequence[int]) -> list[T | None]:
        if self.off is None:
            return [None] * len(addrs)
        return self.run(together([plan(a) for a in addrs]))

    def hold(self, groups: Sequence[Sequence[Check]]) -> list[bool]:
        """For each group of checks, whether it all reads back the same, in one call."""
        return hold(self.memory, groups)

    # -- batch reads -------------------------------------------------------------------

    def strs(self, addrs: Sequence[int], utf8_safe: bool = False) -> list[Read[str] | None]:
        """Text of str objects (2.7: str, read as UTF-8, and unicode).

        Lone surrogates are kept, as Python holds them (2.7 str: undecodable bytes as
        surrogate escapes); with ``utf8_safe`` each becomes U+FFFD, which UTF-8 (so a
        trace) can hold: what the recorder has always written. A 2.7 str's bytes that
        are not UTF-8 become the text ``\\xNN`` instead (a Latin-1 name shows as
        ``caf\\xe9``): a byte string names its bytes, so the trace keeps them visible."""
        return self._batch(lambda a: self.str_plan(a, utf8_safe), addrs)

    def bytestrings(self, addrs: Sequence[int]) -> list[Read[bytes] | None]:
        """Contents of bytes objects (2.7: str)."""
        return self._batch(self.bytes_plan, addrs)

    def ints(self, addrs: Sequence[int]) -> list[Read[int] | None]:
        """Values of int (and bool) objects up to MAX_INT_DIGITS (2.7: int and long)."""
        return self._batch(self.int_plan, addrs)

    def floats(self, addrs: Sequence[int]) -> list[Read[float] | None]:
        return self._batch(self.float_plan, addrs)

    def sequences(self, addrs: Sequence[int], limit: int = MAX_ITEMS) -> list[Read[Items] | None]:
        """Item addresses of tuples and lists: the first ``limit``, and the length."""
        return self._batch(lambda a: self.items_plan(a, limit), addrs)

    def dicts(self, addrs: Sequence[int]) -> list[Read[tuple[Entry, ...]] | None]:
        """Every used entry of each dict. The checks are the dict's words that point at
        its table (unchanged: the same table); add an entry's own (Entry.checks) to
        confirm that entry."""
        return self._batch(self.dict_plan, addrs)

    def cells(self, addrs: Sequence[int]) -> list[Read[int] | None]:
        """The address each cell holds (0: empty); None for what is not a cell."""
        return self._batch(self.cell_plan, addrs)

    def type_names(self, type_addrs: Sequence[int]) -> list[Read[str] | None]:
        """tp_name of type objects (cached per type; the checks catch a reused address)."""
        return self._batch(self.type_name_plan, type_addrs)

    def types_of(self, addrs: Sequence[int]) -> list[Read[int] | None]:
        """The type object address of each object (a live one)."""
        return self._batch(self.type_of_plan, addrs)

    def dict_lookup(self, addrs: Sequence[int], key: str) -> list[Read[int] | None]:
        """The value (an object address) under the str ``key`` in each dict."""
        return self._batch(lambda a: lookups.lookup_plan(self, a, key), addrs)

    def dict_int_lookup(self, addr: int, keys: set[int]) -> dict[int, Read[int]] | None:
        """The values (object addresses) under those of the int ``keys`` that the dict
        at ``addr`` has; None if it is not a dict."""
        return self._batch(lambda a: lookups.int_lookup_plan(self, a, keys), [addr])[0]

    def attributes(self, addrs: Sequence[int], name: str) -> list[Read[int] | None]:
        """The value (an object address) of the attribute ``name`` of each instance of a
        class, from the instance's own attributes (its dict, or its values)."""
        return self._batch(lambda a: lookups.attribute_plan(self, a, name), addrs)

    def module_dicts(self, addrs: Sequence[int]) -> list[Read[int] | None]:
        """The __dict__ of module objects."""
        return self._batch(lambda a: lookups.module_dict_plan(self, a), addrs)

    def sys_modules(self, interpreters: Sequence[int]) -> list[Read[int] | None]:
        """The sys.modules dict of each interpreter (PyInterpreterState addresses)."""
        return self._batch(lambda a: lookups.modules_plan(self, a), interpreters)

    def values(
        self, addrs: Sequence[int], limits: Limits = DEFAULT_LIMITS
    ) -> list[Read[Value] | None]:
        """Any objects as Python values, within ``limits`` (values.py has the shapes).

        Made for a frame's locals: one call reads them all, a level of the object graph
        per step or two."""
        self.read_type_symbols()  # every kind may come up
        return self._batch(lambda a: graph.value_plan(self, a, limits, limits.depth), addrs)

    # -- the steps every kind shares ---------------------------------------------------

    def object_plan(self, addr: int, size: int) -> Plan[bytes | None]:
        """An object's first ``size`` bytes, and SPECULATE more where they can be read;
        None if it cannot be an object or is not live."""
        if bad_pointer(addr):
            return None
        (head,) = yield [(addr, size + SPECULATE)]  # (no read(): this step is hot)
        if head is None:
            (head,) = yield [(addr, size)]
        return head if head is not None and parse.live(head) else None

    def span_plan(self, addr: int, head: bytes, at: int, n: int) -> Plan[bytes | None]:
        """``n`` bytes at ``at``: from the object's header read if it holds them (see
        in_head: callers on hot paths try that first, sparing a generator)."""
        data = self.in_head(addr, head, at, n)
        if data is not None:
            return data
        if n and bad_address(at):
            return None
        return (yield from read(at, n))

    @staticmethod
    def in_head(addr: int, head: bytes, at: int, n: int) -> bytes | None:
        """``n`` bytes at ``at`` if the header read from ``addr`` holds them."""
        start = at - addr
        return head[start : start + n] if 0 <= start and start + n <= len(head) else None

    def type_of(self, head: bytes) -> int:
        return Q.unpack_from(head, self._ob_type)[0]

    def kind_plan(self, tp: int) -> Plan[str | None]:
        """The kind of the type at ``tp``: exact types by address, subclasses by flag."""
        kind = self._kinds.get(tp)
        if kind is not None:
            return kind
        if not self._elf_types:  # maybe one of the types not among the walker's symbols
            self.read_type_symbols()
            kind = self._kinds.get(tp)
            if kind is not None:
                return kind
        info = yield from self.type_plan(tp)
        if info is None:
            return None
        for flag, kind in self._subclass_flags:
            if info.flags & flag:
                return kind
        return None

    def header_check(self, addr: int, head: bytes, size: int) -> Check:
        """The check on an object's header (its refcount may move, the rest may not)."""
        return check(addr, head[:size], True)

    def _typed(
        self, addr: int, size: int, kinds: tuple[str, ...]
    ) -> Plan[tuple[bytes, str] | None]:
        """(header, kind) of an object of one of ``kinds``, else None. (object_plan's
        steps, inlined: every typed read takes this path, often many side by side.)"""
        if bad_pointer(addr):
            return None
        (head,) = yield [(addr, size + SPECULATE)]
        if head is None:
            (head,) = yield [(addr, size)]
        if head is None or not parse.live(head):
            return None
        tp = Q.unpack_from(head, self._ob_type)[0]
        kind = self._kinds.get(tp)
        if kind is None:
            kind = yield from self.kind_plan(tp)
        return (head, kind) if kind in kinds else None

    def type_of_plan(self, addr: int) -> Plan[Read[int] | None]:
        off = self.offsets
        head = yield from self.object_plan(addr, off.ob_type + 8)
        if head is None:
            return None
        return Read(self.type_of(head), (self.header_check(addr, head, off.ob_type + 8),))

    # -- types -------------------------------------------------------------------------

    def type_plan(self, tp: int) -> Plan[TypeInfo | None]:
        """Facts about the type at ``tp`` (cached between calls)."""
        if tp in self._type_cache:
            return self._type_cache[tp]
        if bad_pointer(tp):
            return None
        raw = yield from read(tp, self._type_read)
        if raw is None:  # a static type near the end of its mapping: no cached keys
            raw = yield from read(tp, self._type_short)
        info = None if raw is None else self._parse_type(raw)
        if len(self._type_cache) >= MAX_TYPES_CACHED:
            self._type_cache.clear()
        self._type_cache[tp] = info
        return info

    def _parse_type(self, raw: bytes) -> TypeInfo | None:
        off = self.offsets
        (flags,) = Q.unpack_from(raw, off.type_flags)
        (basicsize,) = q.unpack_from(raw, off.type_basicsize)
        (dictoffset,) = q.unpack_from(raw, off.type_dictoffset)
        (name_at,) = Q.unpack_from(raw, off.type_name)
        cached = 0
        if flags & off.tpflags_heaptype and off.heap_cached_keys is not None:
            if len(raw) >= off.heap_cached_keys + 8:
                (cached,) = Q.unpack_from(raw, off.heap_cached_keys)
        if not 0 < basicsize <= 1 << 20 or not -(1 << 20) <= dictoffset <= 1 << 20:
            return None
        if bad_address(name_at):
            return None
        cached = 0 if bad_pointer(cached) else cached
        return TypeInfo(flags, basicsize, dictoffset, cached, name_at)

    def type_name_plan(self, tp: int) -> Plan[Read[str] | None]:
        cached = self._name_cache.get(tp)
        if cached is not None:
            return cached
        info = yield from self.type_plan(tp)
        if info is None:
            return None
        name = yield from self._c_string(info.name_at, MAX_TYPE_NAME)
        if name is None:
            return None
        at = tp + self.offsets.type_name
        found = Read(
            name.decode("utf-8", "replace"),
            (check(at, Q.pack(info.name_at)), check(info.name_at, name)),
        )
        if len(self._name_cache) >= MAX_TYPES_CACHED:
            self._name_cache.clear()
        self._name_cache[tp] = found
        return found

    def _c_string(self, at: int, cap: int) -> Plan[bytes | None]:
        """The bytes of a NUL-terminated string (without the NUL), read at most a page
        at a time so that a string at the end of a mapping is still read."""
        out = b""
        while len(out) < cap:
            n = min(cap - len(out), _PAGE - at % _PAGE)
            chunk = yield from read(at, n)
            if chunk is None:
                return None
            text = parse.c_string(chunk)
            if text is not None:
                return out + text
            out += chunk
            at += n
        return None

    # -- str and bytes -----------------------------------------------------------------

    def str_plan(
        self, addr: int, utf8_safe: bool = False, length: int | None = None
    ) -> Plan[Read[str] | None]:
        """A str's text (see strs); with ``length``, only a str of that many characters
        (2.7 str: bytes): others are None without their characters read (a lookup by
        key compares many keys with one name)."""
        got = yield from self._typed(addr, self.str_head, (STR, BYTES) if self.py2 else (STR,))
        if got is None:
            return None
        head, kind = got
        if length is not None and self._text_length(head, kind) != length:
            return None
        body = yield from self.text_body(addr, head, kind, MAX_DATA_BYTES, utf8_safe)
        return Read(body.value, body.checks) if body is not None and body.whole else None

    def _text_length(self, head: bytes, kind: str) -> int:
        at = self.offsets.var_size if kind == BYTES else self.text_layout.length
        return q.unpack_from(head, at)[0]

    def text_body(
        self, addr: int, head: bytes, kind: str, max_chars: int, utf8_safe: bool
    ) -> Plan[Body | None]:
        """The text of a str (2.7: str as UTF-8, or unicode), its first ``max_chars``."""
        if kind == BYTES:  # 2.7's str
            got = yield from self.bytes_body(addr, head, max_chars)
            if got is None:
                return None
            text = got.value.decode("utf-8", _PY2_ERRORS[utf8_safe])
            return got._replace(value=text)
        header = parse.text_header(head, self.text_layout)
        if header is None or header[0] > MAX_LENGTH:
            return None
        length, size, hsize, pointer = header
        at = pointer or addr + hsize
        n = min(length, max_chars, MAX_DATA_BYTES // size)
        data = self.in_head(addr, head, at, n * size)
        if data is None:
            data = yield from self.span_plan(addr, head, at, n * size)
            if data is None:
                return None
        text = parse.decode_text(data, size, "replace" if utf8_safe else "surrogatepass")
        if text is None:
            return None
        checks = (self.header_check(addr, head, hsize), check(at, data))
        return _new(Body, (text, length, n == length, checks))

    def bytes_plan(self, addr: int) -> Plan[Read[bytes] | None]:
        got = yield from self._typed(addr, self.offsets.bytes_data, (BYTES,))
        if got is None:
            return None
        body = yield from self.bytes_body(addr, got[0], MAX_DATA_BYTES)
        return Read(body.value, body.checks) if body is not None and body.whole else None

    def bytes_body(self, addr: int, head: bytes, max_bytes: int) -> Plan[Body | None]:
        """The contents of a bytes object (2.7: str), its first ``max_bytes``."""
        off = self.offsets
        (length,) = q.unpack_from(head, off.var_size)
        if not 0 <= length <= MAX_LENGTH:
            return None
        n = min(length, max_bytes, MAX_DATA_BYTES)
        at = addr + off.bytes_data
        data = yield from self.span_plan(addr, head, at, n)
        if data is None:
            return None
        checks = (self.header_check(addr, head, off.bytes_data), check(at, data))
        return _new(Body, (data, length, n == length, checks))

    # -- numbers -----------------------------------------------------------------------

    def int_plan(self, addr: int) -> Plan[Read[int] | None]:
        got = yield from self._typed(addr, self.int_head, (INT, BOOL))
        if got is None:
            return None
        return (yield from self.int_body(addr, got[0]))

    def int_body(self, addr: int, head: bytes) -> Plan[Read[int] | None]:
        off = self.offsets
        if off.int_value is not None:  # 2.7: an int (a C long; bool too) or a long
            is_long = yield from self._py2_long_plan(self.type_of(head))
            if not is_long:
                (value,) = q.unpack_from(head, off.int_value)
                return Read(value, (self.header_check(addr, head, off.int_value + 8),))
        if off.long_tag is not None:  # 3.12+: lv_tag = ndigits << 3 | sign
            assert off.long_non_size_bits is not None and off.long_sign_mask is not None
            assert off.long_sign_negative is not None
            sign, n = parse.long_tag_sign_size(
                Q.unpack_from(head, off.long_tag)[0],
                off.long_non_size_bits,
                off.long_sign_mask,
                off.long_sign_negative,
            )
        else:
            assert off.long_size is not None
            sign, n = parse.long_sign_size(q.unpack_from(head, off.long_size)[0])
        if n > MAX_INT_DIGITS:
            return None
        at = addr + off.long_digits
        data = self.in_head(addr, head, at, n * off.long_digit_size)
        if data is None:
            data = yield from self.span_plan(addr, head, at, n * off.long_digit_size)
            if data is None:
                return None
        magnitude = parse.digits_value(data, n, off.long_shift, off.long_digit_size)
        if magnitude is None:
            return None
        checks = (self.header_check(addr, head, off.long_digits), check(at, data))
        return Read(sign * magnitude, checks)

    def _py2_long_plan(self, tp: int) -> Plan[bool]:
        """Whether a 2.7 int-like type has long's layout (long or a subclass of it)."""
        if tp == self.types.get("PyLong_Type"):
            return True
        if tp in (self.types.get("PyInt_Type"), self.types.get("PyBool_Type")):
            return False
        info = yield from self.type_plan(tp)
        return info is not None and bool(info.flags & self.offsets.tpflags_long_subclass)

    def float_plan(self, addr: int) -> Plan[Read[float] | None]:
        got = yield from self._typed(addr, self.float_head, (FLOAT,))
        return None if got is None else self.float_body(addr, got[0])

    def float_body(self, addr: int, head: bytes) -> Read[float]:
        (value,) = D.unpack_from(head, self.offsets.float_value)
        return Read(value, (self.header_check(addr, head, self.float_head),))

    # -- tuples and lists --------------------------------------------------------------

    def items_plan(self, addr: int, limit: int = MAX_ITEMS) -> Plan[Read[Items] | None]:
        got = yield from self._typed(addr, self.items_head, (TUPLE, LIST))
        if got is None:
            return None
        return (yield from self.items_body(addr, got[0], got[1], limit))

    def sequence_length(self, head: bytes) -> int | None:
        (length,) = q.unpack_from(head, self.offsets.var_size)
        return length if 0 <= length <= MAX_LENGTH else None

    def items_body(self, addr: int, head: bytes, kind: str, limit: int) -> Plan[Read[Items] | None]:
        """The first ``limit`` item addresses of a tuple (inline) or list (behind its
        ob_item); None if any of them cannot be an object's."""
        off = self.offsets
        length = self.sequence_length(head)
        if length is None:
            return None
        n = min(length, limit, MAX_ITEMS)
        if kind == TUPLE:
            at, hsize = addr + off.tuple_items, off.tuple_items
        else:
            (at,) = Q.unpack_from(head, off.list_items)
            hsize = off.list_items + 8
            if n and bad_pointer(at):
                return None
        data = yield from self.span_plan(addr, head, at, 8 * n)
        if data is None:
            return None
        addrs = tuple(w for (w,) in Q.iter_unpack(data))
        if any(bad_pointer(a) for a in addrs):
            return None
        checks = (self.header_check(addr, head, hsize), check(at, data))
        return Read(Items(addrs, kind, length), checks)

    # -- dicts -------------------------------------------------------------------------

    def dict_head_plan(self, addr: int) -> Plan[bytes | None]:
        """The header of a dict (or a subclass's instance), else None."""
        got = yield from self._typed(addr, self.dict_head, (DICT,))
        return None if got is None else got[0]

    def dict_plan(
        self, addr: int, limit: int = MAX_DICT_ENTRIES
    ) -> Plan[Read[tuple[Entry, ...]] | None]:
        """Used entries of a dict (in the first ``limit`` slots of its table)."""
        got = yield from self._typed(addr, self.dict_head, (DICT,))
        if got is None:
            return None
        return (yield from dicts.dict_body(self, addr, got[0], limit))

    def dict_length(self, head: bytes) -> int | None:
        (used,) = q.unpack_from(head, self.offsets.dict_used)
        return used if 0 <= used <= MAX_LENGTH else None

    # -- cells -------------------------------------------------------------------------

    def cell_plan(self, addr: int) -> Plan[Read[int] | None]:
        """The address a cell holds (0: empty, an unbound variable); None if ``addr`` is
        not a cell."""
        off = self.offsets
        if off.cell_ref is None:
            return None
        got = yield from self._typed(addr, self.set_head, (CELL,))
        if got is None:
            return None
        (ref,) = Q.unpack_from(got[0], off.cell_ref)
        if ref and bad_pointer(ref):
            return None
        return Read(ref, (self.header_check(addr, got[0], off.cell_ref + 8),))

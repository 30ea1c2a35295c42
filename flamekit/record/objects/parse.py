"""Pure decoding of object bytes read from a target: no memory access, no state.

Everything here takes bytes (and offsets) and returns a value, or None where the bytes
cannot be what they claim; the reader (reader.py) decides what to read and feeds these.
Kept apart so that they can be tested on their own, with made-up bytes.
"""

from __future__ import annotations

import struct
from array import array
from typing import NamedTuple

Q = struct.Struct("<Q")
q = struct.Struct("<q")
I32 = struct.Struct("<I")
D = struct.Struct("<d")

#: Modulus of CPython's int hash on 64-bit builds (3.x: hash(n) == n % M for n >= 0).
HASH_MODULUS = (1 << 61) - 1
#: PEP 393 kinds: bytes per character, and the codec that reads them. Kind 2 is widened
#: to 4 bytes first (see decode_text), so it reads as UTF-32 too.
_CODECS = {1: "latin-1", 2: "utf-32-le", 4: "utf-32-le"}


def live(head: bytes) -> bool:
    """Whether an object header read at offset 0 has a believable reference count.

    A freed object keeps its type and contents until reused, but its first word (the
    refcount) becomes the allocator's free-list link (an address: bits 32-47 set) or 0:
    such an object is dead even if a stale pointer still leads to it. Live counts fit in
    32 bits (3.12+ immortal ones too); 3.14 keeps flags in bits 48-63 (ob_flags)."""
    (word,) = Q.unpack_from(head, 0)
    return word & 0xFFFFFFFF != 0 and (word >> 32) & 0xFFFF == 0


def digits_value(data: bytes, n: int, shift: int, dsize: int) -> int | None:
    """The magnitude held by ``n`` little-endian digits of ``dsize`` bytes, ``shift``
    bits each (CPython's PyLong ob_digit); None if they are not a normalized int's (a
    digit too wide, or a zero top digit): torn or garbage bytes."""
    if len(data) < n * dsize:
        return None
    limit = 1 << shift
    if n <= 2 and dsize == 4:  # every thread ident, most ints: no array
        low = int.from_bytes(data[:4], "little") if n else 0
        high = int.from_bytes(data[4:8], "little") if n == 2 else 0
        top = high if n == 2 else low
        if n and (top == 0 or low >= limit or high >= limit):
            return None
        return high << shift | low
    if dsize == 4:
        digits = array("I", data[: 4 * n])
    elif dsize == 2:
        digits = array("H", data[: 2 * n])
    else:
        return None
    if n and (digits[-1] == 0 or max(digits) >= limit):
        return None
    value = 0
    for d in reversed(digits):
        value = value << shift | d
    return value


def long_sign_size(size_word: int) -> tuple[int, int]:
    """(sign, number of digits) from a <= 3.11 PyLong's ob_size (signed digit count)."""
    return (-1 if size_word < 0 else 1), abs(size_word)


def long_tag_sign_size(
    tag: int, non_size_bits: int, sign_mask: int, negative: int
) -> tuple[int, int]:
    """(sign, number of digits) from a 3.12+ PyLong's lv_tag (digits << bits | sign)."""
    return (-1 if tag & sign_mask == negative else 1), tag >> non_size_bits


def int_hash(n: int, py2: bool) -> int | None:
    """What CPython stores as the hash of the int ``n`` in a dict entry (64-bit builds);
    None where that is not simple (2.7 longs past a C long)."""
    if py2:
        if not -(1 << 63) <= n < 1 << 63:
            return None
        return -2 if n == -1 else n
    h = abs(n) % HASH_MODULUS
    h = -h if n < 0 else h
    return -2 if h == -1 else h


def pep393_state(
    state: int, kind_shift: int, compact_shift: int, ascii_shift: int
) -> tuple[int, bool, bool]:
    """(kind, compact, ascii) from a PEP 393 str's state word. Kind is 1, 2 or 4 bytes a
    character (0: a 3.6-3.11 string not made ready, which has no canonical data)."""
    return state >> kind_shift & 7, bool(state >> compact_shift & 1), bool(state >> ascii_shift & 1)


class TextLayout(NamedTuple):
    """Where one interpreter's str header keeps its facts (tables/objects.py)."""

    length: int
    data: int  #: where a legacy str (2.7: every unicode) points to its characters
    state: int = -1  #: PEP 393's state word; -1: 2.7 unicode (fixed width, a pointer)
    kind_shift: int = 0
    compact_shift: int = 0
    ascii_shift: int = 0
    ascii_size: int = 0  #: compact ASCII characters start here
    compact_size: int = 0  #: other compact characters start here
    char_size: int = 0  #: 2.7: sizeof(Py_UNICODE)


def text_header(head: bytes, t: TextLayout) -> tuple[int, int, int, int] | None:
    """(length, bytes per character, header size, pointer to the characters) of a str
    whose header is ``head``; the pointer is 0 where the characters follow the header
    (a compact str). None if the header cannot be a str's (unknown kind, no data)."""
    (length,) = q.unpack_from(head, t.length)
    if t.state < 0:
        size, hsize, pointer = t.char_size, t.data + 8, Q.unpack_from(head, t.data)[0]
    else:
        (state,) = I32.unpack_from(head, t.state)
        size, compact, ascii_ = pep393_state(state, t.kind_shift, t.compact_shift, t.ascii_shift)
        if compact:
            hsize, pointer = (t.ascii_size if ascii_ else t.compact_size), 0
        else:  # legacy (a str subclass's instance): the characters behind a pointer
            hsize, pointer = t.data + 8, Q.unpack_from(head, t.data)[0]
            if not pointer:
                return None
    if size not in (1, 2, 4) or length < 0:
        return None
    return length, size, hsize, pointer


def decode_text(data: bytes, char_size: int, errors: str) -> str | None:
    """The characters in ``data`` (``char_size`` bytes each, CPython's own order), or None
    if they cannot be characters (a code point past U+10FFFF: garbage).

    Exact: each 2-byte unit is one character, so two lone surrogates stay two (UTF-16
    would pair them). ``errors`` is "surrogatepass" (lone surrogates kept, as Python
    holds them) or "replace" (U+FFFD for each: text a trace, i.e. UTF-8, can hold)."""
    if char_size == 2:
        wide = array("I", array("H", data[: len(data) & ~1]))
        data = wide.tobytes()
    codec = _CODECS.get(char_size)
    if codec is None:
        return None
    try:
        return data.decode(codec, errors)
    except UnicodeDecodeError:
        return None


def c_string(data: bytes) -> bytes | None:
    """The bytes before the first NUL, or None if there is none."""
    end = data.find(b"\0")
    return None if end < 0 else data[:end]


def dict_index_width(size: int) -> int:
    """Bytes per slot of a 3.6-3.10 dict's index table of ``size`` slots."""
    return 1 if size <= 0xFF else 2 if size <= 0xFFFF else 4 if size <= 0xFFFFFFFF else 8


def entry_struct(
    size: int, hash_off: int | None, key_off: int, value_off: int
) -> tuple[struct.Struct, tuple[int, int, int]]:
    """A Struct unpacking one dict entry of ``size`` bytes, and where in its tuple the
    hash (-1: none), key and value land (field order follows the offsets)."""
    named = ((hash_off, "q", 0), (key_off, "Q", 1), (value_off, "Q", 2))
    present = sorted((o, c, n) for o, c, n in named if o is not None)
    fmt, pos, index = "<", 0, [-1, -1, -1]
    for rank, (o, c, n) in enumerate(present):
        if o < pos:
            raise ValueError("overlapping entry fields")
        fmt += f"{o - pos}x" if o > pos else ""
        fmt += c
        pos = o + 8
        index[n] = rank
    if size > pos:
        fmt += f"{size - pos}x"
    return struct.Struct(fmt), (index[0], index[1], index[2])

"""Just enough of the protocol buffers wire format to write a message, with no runtime.

pprof's profile.proto is the only protobuf flamekit writes, and writing one takes three
field encodings: varints (wire type 0), length-delimited bytes/strings/sub-messages (wire
type 2) and packed repeated varints (wire type 2 around concatenated varints). A runtime
dependency on the ``protobuf`` package (and generated code) for that would be heavier
than these few functions; the tests parse our output back with the real ``protobuf``.

Encoding rules followed (https://protobuf.dev/programming-guides/encoding/):

* a field is ``key = field_number << 3 | wire_type`` as a varint, then its payload;
* ``int64`` negatives are their 64-bit two's complement as a 10-byte varint (``int64``
  fields, not ``sint64``: profile.proto uses plain int64);
* proto3 scalars equal to their default (0, false, "") may be omitted, and are, except
  in repeated fields, where every element counts (``string_table[0] == ""``).
"""

from __future__ import annotations

from collections.abc import Iterable

VARINT = 0
LEN = 2
_U64 = 1 << 64


def varint(value: int) -> bytes:
    """The base-128 varint of an unsigned value, or of a negative int64's two's complement."""
    if value < 0:
        if value < -(1 << 63):
            raise OverflowError(f"{value} does not fit in int64")
        value += _U64
    elif value >= _U64:
        raise OverflowError(f"{value} does not fit in 64 bits")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    """A field's key (tag)."""
    return varint(field << 3 | wire_type)


class Message:
    """A message being written: fields are appended in the order they are added.

    Field order does not matter to parsers, and repeated fields may be split; appending
    keeps the writer simple and the output deterministic.
    """

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def number(self, field: int, value: int, *, always: bool = False) -> Message:
        """An int64/uint64/bool field (omitted when 0 unless ``always``)."""
        if value or always:
            self.buf += key(field, VARINT)
            self.buf += varint(int(value))
        return self

    def blob(self, field: int, data: bytes | bytearray) -> Message:
        """A length-delimited field: bytes, an encoded string or a sub-message; always written."""
        self.buf += key(field, LEN)
        self.buf += varint(len(data))
        self.buf += data
        return self

    def string(self, field: int, text: str) -> Message:
        """A string field, UTF-8 (lone surrogates, which UTF-8 cannot hold, as ``\\udXXX``)."""
        return self.blob(field, text.encode("utf-8", "backslashreplace"))

    def message(self, field: int, sub: Message) -> Message:
        """A sub-message field."""
        return self.blob(field, sub.buf)

    def packed(self, field: int, values: Iterable[int]) -> Message:
        """A packed repeated varint field (nothing at all when ``values`` is empty)."""
        payload = b"".join(map(varint, values))
        if payload:
            self.blob(field, payload)
        return self

    def __bytes__(self) -> bytes:
        return bytes(self.buf)

    def __len__(self) -> int:
        return len(self.buf)

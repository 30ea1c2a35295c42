"""Names for the split-off parts of functions in a stripped object, from its ``.eh_frame``.

GCC moves a function's rarely-run blocks to a part of their own in ``.text.unlikely``
(hot/cold partitioning: the full ``.symtab`` calls it ``f.cold``). A stripped object keeps
only ``.dynsym``, which names ``f`` alone, so an address in ``f.cold`` is in no symbol.
That part can be most of the function: in Debian's stripped CPython 3.14 (an optimized,
profile-guided build) ``_PyEval_EvalFrameDefault`` is a 1,184-byte entry whose
interpreter loop is an 84 KB part elsewhere, so every evaluation frame of a native
stack lies there, and without a name the merge with the Python stacks could find none.

The call-frame information still describes each part with an FDE of its own, and three
facts together mark an FDE as a split part of ``f`` rather than a function:
- it follows ``f``'s FDE in ``.eh_frame`` (the compiler emits them in turn);
- its first rule changes the frame at its very first address (entered mid-frame: a
  function's own FDE starts in the caller's frame, changed only after its prologue);
- ``f``'s code jumps into it (a direct ``jmp`` or ``jcc``, not a call).
No symbol holds it either, so the name is added, never changed. Any doubt (an encoding
not handled, bytes that do not parse) leaves the part unnamed: ``module+0xOFFSET``.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Callable, Sequence

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
#: pointer encodings (DW_EH_PE_*): value format -> struct, and the pc-relative application
_FORMATS = {
    0x00: struct.Struct("<Q"),
    0x02: struct.Struct("<H"),
    0x03: struct.Struct("<I"),
    0x04: struct.Struct("<Q"),
    0x0A: struct.Struct("<h"),
    0x0B: struct.Struct("<i"),
    0x0C: struct.Struct("<q"),
}
_PCREL = 0x10
_OMIT = 0xFF
#: call-frame instructions that set a rule or the CFA (DW_CFA_*): at an FDE's first
#: address they mean it was entered mid-frame. The high-two-bit form DW_CFA_offset is
#: tested apart; advance_loc, nop and GNU_args_size change no rule.
_RULE_OPS = frozenset({0x05, 0x06, 0x07, 0x08, 0x09, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12,
                       0x13, 0x14, 0x15, 0x16})  # fmt: skip
_DW_CFA_OFFSET = 0x2


class _Bad(Exception):
    """Bytes that do not parse as the format says: give up on the section."""


def _uleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise _Bad
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _pointer(data: bytes, at: int, encoding: int, address: int) -> tuple[int, int]:
    """An encoded pointer at ``at`` (the section's bytes at link-time ``address``)."""
    fmt = _FORMATS.get(encoding & 0x0F)
    if fmt is None or encoding & 0x70 not in (0, _PCREL) or at + fmt.size > len(data):
        raise _Bad
    (value,) = fmt.unpack_from(data, at)
    if encoding & 0x70 == _PCREL:
        value = (value + address + at) & 0xFFFF_FFFF_FFFF_FFFF
    return value, at + fmt.size


def _cie_encoding(data: bytes, at: int, end: int) -> int:
    """A CIE's FDE pointer encoding (its augmentation's ``R``; absolute when none)."""
    version = data[at]
    nul = data.index(b"\0", at + 1, end)
    aug = data[at + 1 : nul].decode("ascii", "replace")
    if not aug.startswith("z"):
        if aug:
            raise _Bad  # an augmentation that cannot be skipped without knowing it
        return 0x00
    at = nul + 1
    _, at = _uleb(data, at)  # code alignment
    _, at = _uleb(data, at)  # data alignment (sleb: only skipped)
    if version == 1:
        at += 1
    else:
        _, at = _uleb(data, at)
    _, at = _uleb(data, at)  # augmentation data length
    for c in aug[1:]:
        if c == "R":
            return data[at]
        if c == "P":
            enc = data[at]
            _, at = _pointer(data, at + 1, enc & 0x0F, 0)
        elif c == "L":
            at += 1
        elif c not in "SB":
            raise _Bad
    return 0x00


def fdes(data: bytes, address: int) -> list[tuple[int, int, bool]]:
    """Each FDE of an ``.eh_frame`` section (its bytes, at link-time ``address``), in
    order: (start, size, entered mid-frame). Empty if the section does not parse."""
    out: list[tuple[int, int, bool]] = []
    encodings: dict[int, tuple[int, bool]] = {}
    at = 0
    try:
        while at + 4 <= len(data):
            (length,) = _U32.unpack_from(data, at)
            if length == 0:
                break
            if length == 0xFFFF_FFFF:
                raise _Bad  # 64-bit DWARF: not emitted for x86-64 code here
            body, end = at + 4, at + 4 + length
            if end > len(data) or length < 4:
                raise _Bad
            (cie_id,) = _U32.unpack_from(data, body)
            if cie_id == 0:
                z = data[body + 5 : body + 6] == b"z"
                encodings[at] = (_cie_encoding(data, body + 4, end), z)
            else:
                encoding, z = encodings.get(body - cie_id, (_OMIT, False))
                if encoding == _OMIT:
                    raise _Bad
                start, p = _pointer(data, body + 4, encoding, address)
                size, p = _pointer(data, p, encoding & 0x0F, 0)
                if z:
                    n, p = _uleb(data, p)
                    p += n
                first = next((b for b in data[p:end] if b != 0x00), None)
                mid = first is not None and (
                    first >> 6 == _DW_CFA_OFFSET or (first >> 6 == 0 and first in _RULE_OPS)
                )
                out.append((start, size, mid))
            at = end
    except (_Bad, ValueError, IndexError, struct.error):
        return []
    return out


def _jumps_into(code: bytes, address: int, lo: int, hi: int) -> bool:
    """Whether the code at ``address`` holds a direct ``jmp rel32`` or ``jcc rel32``
    (x86-64) to an address in [lo, hi). A byte pattern, not a disassembly: a false
    match must also land in the part the FDE order already pointed to."""
    for opcode, width in ((b"\xe9", 5), (b"\x0f", 6)):
        i = code.find(opcode)
        while i != -1:
            if i + width <= len(code) and (width == 5 or 0x80 <= code[i + 1] <= 0x8F):
                (rel,) = _I32.unpack_from(code, i + width - 4)
                if lo <= address + i + width + rel < hi:
                    return True
            i = code.find(opcode, i + 1)
    return False


def split_parts(
    fde_list: Sequence[tuple[int, int, bool]],
    functions: Sequence[tuple[int, int, str]],
    code: Callable[[int, int], bytes | None],
) -> list[tuple[int, int, str]]:
    """(start, size, ``name.cold``) for each FDE that is a split part of a named function
    (see the module doc). ``functions``: the object's sized symbols; ``code(start, size)``:
    its bytes at link-time addresses (None where there are none)."""
    by_start = {start: (size, name) for start, size, name in functions}
    named = sorted((start, start + size) for start, size, _ in functions)
    out = []
    for (prev_start, _prev_size, _), (start, size, mid) in zip(fde_list, fde_list[1:]):
        got = by_start.get(prev_start)
        if not mid or got is None or size <= 0 or _covered(named, start):
            continue
        fsize, name = got
        body = code(prev_start, fsize)
        if body is not None and _jumps_into(body, prev_start, start, start + size):
            out.append((start, size, f"{name}.cold"))
    return out


def _covered(spans: list[tuple[int, int]], address: int) -> bool:
    i = bisect_right(spans, (address, 1 << 64)) - 1
    return any(lo <= address < hi for lo, hi in spans[max(0, i - 8) : i + 1])

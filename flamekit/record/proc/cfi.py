"""Call-frame information of one ELF object, as a table of unwind rules by address.

To unwind a native stack, each frame needs three facts at its program counter: where
the canonical frame address (CFA) is (a register plus an offset), where the return
address is saved, and where the caller's rbp is saved. ``.eh_frame`` (and
``.debug_frame``) hold them as DWARF call-frame programs, one FDE per function.

Decoding every FDE of libpython with pyelftools takes 3.5 s (5,749 FDEs, 63,924 rows),
too long for an attach, and a recording meets a few hundred functions. So when the
object has ``.eh_frame_hdr`` (its sorted search table: initial location -> FDE), only the
table is read up front (one ``struct`` pass) and an FDE is decoded the first time a pc
falls in it, its rows kept: a sample's work is then two bisects per frame. Without the
header table (or with an encoding other than the ubiquitous ``datarel|sdata4``) the whole
``.eh_frame``/``.debug_frame`` is decoded once into one sorted table.

A rule is ``(cfa_reg, cfa_offset, ra_offset, rbp_rule, cfa_expression)``: ``cfa_reg``
the DWARF number of rsp (7) or rbp (6); or :data:`EXPR` with the CFA a DWARF expression
of the few operations PLT stubs and frames realigned for AVX use (registers plus
offsets, constants, and, >=, shift, plus, dereference: :func:`compile_expression`),
evaluated by the unwinder; or -1 for any other expression (signal frames...), where the
unwinder cuts the stack. ``ra_offset`` None: the return address is undefined, the
outermost frame (``_start``, a thread's start). ``rbp_rule``: the offset from the CFA
where rbp is saved, or an expression for that address (a realigned frame's ``rbp + 0``);
None: rbp is not saved, it keeps its value.

The object is the target's, so its bytes are not trusted: anything pyelftools raises
on them makes the FDE (or the object) one with no rules, never an exception.
"""

from __future__ import annotations

import io
import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable

from elftools.dwarf.callframe import FDE, CallFrameInfo
from elftools.dwarf.callframe import RegisterRule as _RegRule
from elftools.dwarf.structs import DWARFStructs

from flamekit.record.proc.elf import _PARSE_ERRORS, ElfImage

RSP, RBP, RA = 7, 6, 16  #: DWARF register numbers on x86-64 (16: the return address, rip)
#: cfa_reg of a rule whose CFA is a compiled expression
EXPR = -2
#: A compiled DWARF expression: (operation, operand) pairs (see compile_expression)
Expression = tuple[tuple[int, int], ...]
Rule = tuple[int, int, "int | None", "int | Expression | None", "Expression | None"]
#: The frame-pointer convention (push rbp; mov rbp, rsp), for objects with no CFI.
FRAME_POINTER_RULE: Rule = (RBP, 16, -8, -16, None)
#: DWARF operations compile_expression takes: breg0..31 (register + sleb), lit0..31,
#: and, ge, shl, plus, minus, plus_uconst (uleb)
OP_BREG0, OP_BREG31, OP_LIT0, OP_LIT31 = 0x70, 0x8F, 0x30, 0x4F
OP_AND, OP_GE, OP_SHL, OP_PLUS, OP_MINUS, OP_PLUS_UCONST = 0x1A, 0x2A, 0x24, 0x22, 0x1C, 0x23
#: DW_OP_deref: the word at the address on top (a realigned frame's CFA: ``*(rbp - 24)``)
OP_DEREF = 0x06
_NO_OPERAND = frozenset({OP_AND, OP_GE, OP_SHL, OP_PLUS, OP_MINUS, OP_DEREF})
_HDR = struct.Struct("<BBBB")
_S32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_DW_EH_PE_DATAREL_SDATA4 = 0x3B
_DW_EH_PE_UDATA4 = 0x03
_DW_EH_PE_PCREL_SDATA4 = 0x1B
_NT_GNU_BUILD_ID = 3
_STRUCTS = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8)


def build_id(elf: ElfImage) -> bytes | None:
    """The GNU build id: how an object is found offline. In ``.note.gnu.build-id``, or
    among the notes of a plain ``.note`` (the kernel's vDSO)."""
    for name in (".note.gnu.build-id", ".note"):
        try:
            notes = elf.section_data(name)
        except Exception:  # noqa: BLE001 - a missing or hostile note is no build id
            continue
        at = 0
        while at + 12 <= len(notes):
            namesz, descsz, kind = struct.unpack_from("<III", notes, at)
            desc = at + 12 + ((namesz + 3) & ~3)
            if kind == _NT_GNU_BUILD_ID and notes[at + 12 : at + 15] == b"GNU" and descsz:
                found = notes[desc : desc + descsz]
                return found if len(found) == descsz else None
            at = desc + ((descsz + 3) & ~3)
    return None


def _leb(data: list[int], at: int, signed: bool) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("a LEB128 number runs past its expression")
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    if signed and b & 0x40:
        value -= 1 << shift
    return value, at


def compile_expression(code: list[int]) -> Expression | None:
    """A CFA (or saved-register address) expression as (operation, operand) pairs, if it
    uses only the operations the unwinder evaluates: those of PLT stubs (``rsp + 8 +
    ((rip & 15) >= 11) << 3``) and of frames realigned for AVX (``*(rbp - 24)``, rbp
    saved at ``rbp + 0``); None for any other."""
    out = []
    at = 0
    while at < len(code):
        op = code[at]
        at += 1
        if OP_BREG0 <= op <= OP_BREG31 or op == OP_PLUS_UCONST:
            if at >= len(code) or code[-1] & 0x80:
                return None  # its operand runs past the expression
            arg, at = _leb(code, at, op != OP_PLUS_UCONST)
        elif OP_LIT0 <= op <= OP_LIT31 or op in _NO_OPERAND:
            arg = 0
        else:
            return None
        out.append((op, arg))
    return tuple(out)


def _row_rule(row: dict) -> Rule:
    cfa = row["cfa"]
    reg = cfa.reg if cfa.expr is None and cfa.reg in (RSP, RBP) else -1
    expr = compile_expression(list(cfa.expr)) if cfa.expr is not None else None
    if expr is not None:
        reg = EXPR
    ra = row.get(RA)
    ra_off = ra.arg if ra is not None and ra.type == _RegRule.OFFSET else None
    if ra is None:  # not described: the ABI's default, just above the CFA
        ra_off = -8
    bp = row.get(RBP)
    bp_rule: int | Expression | None = None
    if bp is not None and bp.type == _RegRule.OFFSET:
        bp_rule = bp.arg
    elif bp is not None and bp.type == _RegRule.EXPRESSION:
        # saved at an address the expression computes (a realigned frame: rbp + 0)
        bp_rule = compile_expression(list(bp.arg))
    return (reg, cfa.offset if reg in (RSP, RBP) else 0, ra_off, bp_rule, expr)


#: DW_CFA_GNU_args_size: the size of the arguments pushed for a call, which C++ code
#: (libstdc++, numpy) notes around calls for the exception unwinder. It changes no rule;
#: pyelftools' table decoder does not know it and rejects the whole FDE (every numpy
#: stack was cut at its first C++ frame), so it is dropped before decoding.
_DW_CFA_GNU_ARGS_SIZE = 0x2E


def _without_args_size(instructions: list) -> list:
    return [i for i in instructions if int(i.opcode) != _DW_CFA_GNU_ARGS_SIZE]


def _fde_rows(fde: FDE) -> tuple[list[int], list[Rule], int]:
    """One FDE's rows: their start addresses, their rules, and the FDE's end."""
    start = fde.header["initial_location"]
    end = start + fde.header["address_range"]
    fde.instructions = _without_args_size(fde.instructions)
    if fde.cie is not None:
        fde.cie.instructions = _without_args_size(fde.cie.instructions)
    starts: list[int] = []
    rules: list[Rule] = []
    for row in fde.get_decoded().table:
        starts.append(row["pc"])
        rules.append(_row_rule(row))
    return starts, rules, end


class UnwindTable:
    """The unwind rules of one object, by link-time address (see the module doc)."""

    def __init__(self, elf: ElfImage) -> None:
        #: lazy mode: FDE initial locations (sorted) and offsets in .eh_frame
        self._locs: array | None = None
        self._fde_offsets: array | None = None
        self._decoded: dict[int, tuple[list[int], list[Rule], int] | None] = {}
        self._cfi: CallFrameInfo | None = None
        #: eager mode: every row, sorted
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._rules: list[Rule] = []
        self.has_cfi = False
        try:
            self._load(elf)
        except _PARSE_ERRORS:
            self._locs = None
            self._starts, self._ends, self._rules = [], [], []
        self.has_cfi = self._locs is not None or bool(self._starts)

    def _load(self, elf: ElfImage) -> None:
        eh = elf.section(".eh_frame")
        if eh is not None and eh.size:
            self._cfi = CallFrameInfo(
                io.BytesIO(elf.section_data(".eh_frame")), eh.size, eh.address, _STRUCTS, True
            )
            hdr = elf.section(".eh_frame_hdr")
            if hdr is not None and self._search_table(
                elf.section_data(".eh_frame_hdr"), hdr.address, eh.address
            ):
                return
            self._eager(e for e in self._cfi.get_entries() if isinstance(e, FDE))
        debug = elf.section(".debug_frame")
        if debug is not None and debug.size:
            cfi = CallFrameInfo(
                io.BytesIO(elf.section_data(".debug_frame")), debug.size, debug.address,
                _STRUCTS, False,
            )  # fmt: skip
            self._eager(e for e in cfi.get_entries() if isinstance(e, FDE))

    def _search_table(self, data: bytes, hdr_addr: int, eh_addr: int) -> bool:
        """Read .eh_frame_hdr's sorted table; False for an encoding we do not read."""
        if len(data) < 12:
            return False
        version, ptr_enc, count_enc, table_enc = _HDR.unpack_from(data)
        if (version, count_enc, table_enc) != (1, _DW_EH_PE_UDATA4, _DW_EH_PE_DATAREL_SDATA4):
            return False
        if ptr_enc != _DW_EH_PE_PCREL_SDATA4:
            return False
        (count,) = _U32.unpack_from(data, 8)
        if 12 + 8 * count > len(data):
            return False
        pairs = struct.unpack_from(f"<{2 * count}i", data, 12)
        self._locs = array("q", (hdr_addr + v for v in pairs[0::2]))
        self._fde_offsets = array("q", (hdr_addr + v - eh_addr for v in pairs[1::2]))
        return True

    def _eager(self, fdes: Iterable[FDE]) -> None:
        rows: list[tuple[int, int, Rule]] = list(zip(self._starts, self._ends, self._rules))
        for fde in fdes:
            starts, rules, end = _fde_rows(fde)
            for i, (s, r) in enumerate(zip(starts, rules)):
                rows.append((s, starts[i + 1] if i + 1 < len(starts) else end, r))
        rows.sort(key=lambda r: r[0])
        self._starts = [r[0] for r in rows]
        self._ends = [r[1] for r in rows]
        self._rules = [r[2] for r in rows]

    def rule(self, pc: int) -> Rule | None:
        """The rule at link-time address ``pc``; None where no FDE covers it."""
        locs = self._locs
        if locs is not None:
            i = bisect_right(locs, pc) - 1
            if i < 0:
                return None
            rows = self._decoded.get(i, False)
            if rows is False:
                rows = self._decode(i)
            if rows is None or pc >= rows[2]:
                return None
            j = bisect_right(rows[0], pc) - 1
            return rows[1][j] if j >= 0 else None
        i = bisect_right(self._starts, pc) - 1
        if i < 0 or pc >= self._ends[i]:
            return None
        return self._rules[i]

    def _decode(self, i: int) -> tuple[list[int], list[Rule], int] | None:
        assert self._cfi is not None and self._fde_offsets is not None
        try:
            entry = self._cfi._parse_entry_at(self._fde_offsets[i])
            rows = _fde_rows(entry) if isinstance(entry, FDE) else None
        except _PARSE_ERRORS:
            rows = None
        self._decoded[i] = rows
        return rows

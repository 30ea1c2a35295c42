"""Unwinding a stopped thread's native stack: its raw return addresses, nothing more.

The thread is held in a ptrace-stop (the pauser's), so its registers and stack hold
still. From (rip, rsp, rbp), each frame's rule comes from the call-frame information of
the object its pc lies in (:mod:`flamekit.record.proc.cfi`, parsed once per object); an
object with no CFI at all is walked by the frame-pointer convention. The walk stops,
marking the stack *cut*, at anything it cannot follow exactly (a pc in no known object,
a pc its object has no rule for, a CFA given as a DWARF expression, an unreadable or
non-advancing stack, the depth bound): it never guesses. A return address rule marked
undefined (``_start``, a thread's start routine) ends a whole stack.

Stack memory is read in 16 KiB windows (four pages in one ``process_vm_readv``, which
stops at the end of the stack's mapping), so a sample's unwind costs a few reads, not
one per frame. Which objects are loaded is read from /proc/PID/maps when a pc falls
outside every object known (a ``dlopen``): each object is then recorded once
(:attr:`NativeUnwinder.appeared`), path, build id, load bias and mapped ranges, so the
stacks can be symbolized offline, anywhere.
"""

from __future__ import annotations

import struct
import tempfile
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from flamekit.errors import TargetError
from flamekit.record.proc import maps as mapsmod
from flamekit.record.proc.cfi import (
    FRAME_POINTER_RULE,
    OP_AND,
    OP_BREG0,
    OP_BREG31,
    OP_DEREF,
    OP_GE,
    OP_LIT0,
    OP_LIT31,
    OP_MINUS,
    OP_PLUS,
    OP_PLUS_UCONST,
    OP_SHL,
    RA,
    RBP,
    RSP,
    Expression,
    Rule,
    UnwindTable,
    build_id,
)
from flamekit.record.proc.elf import ElfError, ElfImage
from flamekit.record.proc.memory import ProcessMemory
from flamekit.record.proc.registers import RegisterReader

#: Frames of one native stack, at most: a deeper one is cut there.
MAX_NATIVE_DEPTH = 1024
_WINDOW = 1 << 14
_PAGE = 1 << 12
_U64 = struct.Struct("<Q")
_VDSO = "[vdso]"
#: Return addresses whose rules are remembered, at most (emptied when full).
_RULES_CACHED = 1 << 16


@dataclass(frozen=True)
class LoadedObject:
    """One ELF object as the target has it loaded: what symbolizing needs."""

    path: str  #: as the target names it (/proc/PID/maps)
    build_id: bytes | None
    bias: int  #: add to a link-time address to get the target's address
    #: every mapping of it: (start, end, file offset, perms)
    ranges: tuple[tuple[int, int, int, str], ...]


_MASK = (1 << 64) - 1
_BINARY = {
    OP_AND: lambda a, b: a & b,
    OP_GE: lambda a, b: int(a >= b),
    OP_SHL: lambda a, b: (a << b) & _MASK if b < 64 else 0,
    OP_PLUS: lambda a, b: (a + b) & _MASK,
    OP_MINUS: lambda a, b: (a - b) & _MASK,
}


def evaluate(
    expr: Expression,
    regs: dict[int, int],
    read: Callable[[int], int | None] | None = None,
    push: int | None = None,
) -> int | None:
    """A compiled expression's value with these registers (DWARF numbers), words read
    with ``read`` (DW_OP_deref), ``push`` on the stack first (a saved register's address
    expression starts from the CFA); None if it names a register we do not track, reads
    what cannot be read, or is malformed (the stack is cut then)."""
    stack: list[int] = [] if push is None else [push]
    for op, arg in expr:
        if OP_BREG0 <= op <= OP_BREG31:
            reg = regs.get(op - OP_BREG0)
            if reg is None:
                return None
            stack.append((reg + arg) & _MASK)
        elif OP_LIT0 <= op <= OP_LIT31:
            stack.append(op - OP_LIT0)
        elif op == OP_PLUS_UCONST:
            if not stack:
                return None
            stack.append((stack.pop() + arg) & _MASK)
        elif op == OP_DEREF:
            if not stack or read is None:
                return None
            word = read(stack.pop())
            if word is None:
                return None
            stack.append(word)
        else:
            if len(stack) < 2:
                return None
            b, a = stack.pop(), stack.pop()
            stack.append(_BINARY[op](a, b))
    if push is not None:
        return stack[-1] if stack else None
    return stack[-1] if len(stack) == 1 else None


class _Object:
    __slots__ = ("info", "table", "bias")

    def __init__(self, info: LoadedObject, table: UnwindTable | None) -> None:
        self.info = info
        self.table = table if table is not None and table.has_cfi else None
        self.bias = info.bias


class _Stack:
    """Reads 8-byte words of one stopped thread's stack, window by window."""

    __slots__ = ("memory", "windows")

    def __init__(self, memory: ProcessMemory) -> None:
        self.memory = memory
        self.windows: dict[int, bytes] = {}

    def word(self, address: int) -> int | None:
        base = address & ~(_WINDOW - 1)
        data = self.windows.get(base)
        if data is None:
            data, _ = self.memory.read_ranges_partial(
                [(base + k, _PAGE) for k in range(0, _WINDOW, _PAGE)]
            )
            self.windows[base] = data
        off = address - base
        if off + 8 > len(data):
            return None
        return _U64.unpack_from(data, off)[0]


class NativeUnwinder:
    """Unwinds the native stacks of one process's stopped threads."""

    def __init__(self, pid: int, memory: ProcessMemory, max_depth: int = MAX_NATIVE_DEPTH) -> None:
        self.pid = pid
        self.memory = memory
        self.max_depth = max_depth
        self.registers = RegisterReader()
        #: objects loaded since the last look, for the caller to record (then clear)
        self.appeared: list[LoadedObject] = []
        self._known: dict[tuple[str, int, int], _Object] = {}
        self._starts: list[int] = []  #: executable ranges, sorted by start
        self._ranges: list[tuple[int, int, _Object]] = []
        #: return address -> its rule (None: none): a program comes back to the same
        #: few hundred call sites sample after sample; two bisects each, saved
        self._return_rules: dict[int, Rule | None] = {}
        self.refresh()

    # -- the objects loaded -------------------------------------------------------------

    def refresh(self) -> None:
        """Read the target's map again: new objects are parsed and reported."""
        maps = mapsmod.read_maps(self.pid)
        groups: dict[tuple[str, int], list[mapsmod.Mapping]] = {}
        for m in maps:
            if m.is_file:
                groups.setdefault((m.path, m.inode), []).append(m)
            elif m.path == _VDSO:
                groups.setdefault((m.path, 0), []).append(m)
        ranges: list[tuple[int, int, _Object]] = []
        for (path, inode), mine in groups.items():
            if not any("x" in m.perms for m in mine):
                continue
            key = (path, inode, mine[0].start)
            obj = self._known.get(key)
            if obj is None:
                obj = self._known[key] = self._open(path, mine, maps)
                self.appeared.append(obj.info)
            ranges += [(m.start, m.end, obj) for m in mine if "x" in m.perms]
        ranges.sort(key=lambda r: r[0])
        self._ranges = ranges
        self._return_rules = {}  # an address may now lie in another object
        self._starts = [r[0] for r in ranges]

    def _open(self, path: str, mine: list[mapsmod.Mapping], maps: list[mapsmod.Mapping]) -> _Object:
        spans = tuple((m.start, m.end, m.offset, m.perms) for m in mine)
        if path == _VDSO:
            return self._open_vdso(mine[0], spans)
        try:
            elf = ElfImage(mapsmod.host_path(self.pid, path, maps), path)
        except (ElfError, FileNotFoundError):
            # unreadable: frame pointers through it, and symbolized as module+offset
            return _Object(LoadedObject(path, None, mine[0].start - mine[0].offset, spans), None)
        try:
            try:
                bias = mapsmod.load_bias(maps, path, elf.loads, elf.is_pie)
            except LookupError:
                bias = mine[0].start - mine[0].offset
            info = LoadedObject(path, build_id(elf), bias, spans)
            return _Object(info, UnwindTable(elf))
        finally:
            elf.close()

    def _open_vdso(self, m: mapsmod.Mapping, spans: tuple) -> _Object:
        """The kernel's vDSO (clock_gettime and friends) is in no file: its image is read
        from the target, once, through a temporary file for the ELF reader. Linked at 0."""
        info = LoadedObject(_VDSO, None, m.start, spans)
        try:
            image = self.memory.read(m.start, m.end - m.start)
        except TargetError:
            return _Object(info, None)
        with tempfile.NamedTemporaryFile(prefix="flamekit-vdso-") as f:
            f.write(image)
            f.flush()
            try:
                elf = ElfImage(f.name, _VDSO)
            except ElfError:
                return _Object(info, None)
            try:
                return _Object(LoadedObject(_VDSO, build_id(elf), m.start, spans), UnwindTable(elf))
            finally:
                elf.close()

    def _object_at(self, pc: int) -> _Object | None:
        i = bisect_right(self._starts, pc) - 1
        if i >= 0:
            start, end, obj = self._ranges[i]
            if pc < end:
                return obj
        return None

    # -- one stack ----------------------------------------------------------------------

    def unwind(self, tid: int) -> tuple[tuple[int, ...], bool] | None:
        """The return addresses of stopped thread ``tid``, innermost (its pc) first, and
        whether the walk was cut short; None if its registers cannot be read."""
        regs = self.registers.read(tid)
        if regs is None:
            return None
        pc, sp, bp = regs
        stack = _Stack(self.memory)
        ips = [pc]
        refreshed = False
        first = True
        cache = self._return_rules
        while True:
            rule = cache.get(pc, False) if not first else False
            if rule is False:
                obj = self._object_at(pc)
                if obj is None and not refreshed:
                    refreshed = True  # something loaded since the last look (dlopen)
                    self.refresh()
                    cache = self._return_rules
                    obj = self._object_at(pc)
                if obj is None:
                    return tuple(ips), True
                # A return address is the instruction after the call: its rule is the call's.
                look = pc - obj.bias - (0 if first else 1)
                rule = obj.table.rule(look) if obj.table is not None else FRAME_POINTER_RULE
                if not first:
                    if len(cache) >= _RULES_CACHED:
                        cache.clear()
                    cache[pc] = rule
            if rule is None:
                return tuple(ips), True
            cfa_reg, cfa_off, ra_off, bp_off, expr = rule
            if cfa_reg == RSP:
                cfa = sp + cfa_off
            elif cfa_reg == RBP:
                cfa = bp + cfa_off
            elif expr is not None:
                got = evaluate(expr, {RSP: sp, RBP: bp, RA: pc}, stack.word)
                if got is None:
                    return tuple(ips), True
                cfa = got
            else:
                return tuple(ips), True
            if ra_off is None:
                return tuple(ips), False  # the outermost frame
            ra = stack.word(cfa + ra_off)
            if ra is None:
                return tuple(ips), True
            if bp_off is not None:
                if bp_off.__class__ is int:
                    saved = stack.word(cfa + bp_off)
                else:  # an address expression (a realigned frame's rbp at rbp + 0)
                    at = evaluate(bp_off, {RSP: sp, RBP: bp, RA: pc}, stack.word, cfa)
                    saved = None if at is None else stack.word(at)
                if saved is None:
                    return tuple(ips), True
                bp = saved
            if ra == 0:
                return tuple(ips), False  # a thread's start: nothing called it
            if cfa <= sp or len(ips) >= self.max_depth:
                return tuple(ips), True
            sp = cfa
            pc = ra
            ips.append(ra)
            first = False

"""A frame's arguments and local variables, read raw: what ``flamekit dump --locals`` shows.

Not the sampler's path. The walker (record/walk/) yields frames as (code address,
offset) and nothing more, because every sample pays for what it reads; a dump needs the
frames' own addresses too, so :func:`frame_chain` walks a thread's chain again, slowly
and simply (a read per frame), with the walker's rules for which frames are Python
calls, and the snapshot pairs its frames with the walker's by code address. A dump
reads a paused target, so both walks see the same chain; a live (non-blocking) one may
not, and a frame whose code addresses disagree gets no locals rather than wrong ones.

Where the variables are:

* 3.10 and older: the frame object's ``f_localsplus`` holds the locals
  (``co_varnames``), then the cells (``co_cellvars``), then the free variables
  (``co_freevars``); cells and free variables are cell objects, dereferenced here. An
  argument that is also a cell has its local slot cleared (the cell holds it).
* 3.11+: the interpreter frame's ``localsplus`` holds them all in one array, named by
  ``co_localsplusnames`` and kinded by ``co_localspluskinds`` (a cell or free variable
  is a cell object once MAKE_CELL or COPY_FREE_VARS has run; before, its raw value).
  3.13+ take these offsets from the target's ``_Py_DebugOffsets``; 3.14's slots are
  tagged stack references (the low bits masked off, a tagged int skipped).

The parameters come first in both, ``co_argcount + co_kwonlyargcount`` of them plus
``*args`` and ``**kwargs`` when the code's flags say so. Every read goes through the
one object reader (record/objects/), within its limits; a value that cannot be read is
an :class:`~flamekit.record.objects.Opaque` without a type name. Unbound variables
(an empty slot or cell) are left out.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from flamekit.record.bounds import bad_pointer
from flamekit.record.objects import Limits, ObjectReader, Opaque, Value
from flamekit.record.objects.plans import read, together
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import MAX_DEPTH

#: Most variables a frame is read for (CPython caps a code object's at far fewer in
#: practice; a bigger count is garbage).
MAX_SLOTS = 1 << 14
_Q = struct.Struct("<Q")
_I = struct.Struct("<i")


@dataclass(frozen=True)
class Local:
    """One bound variable of a frame: its name, whether it is a parameter, its value."""

    name: str
    arg: bool
    value: Value  #: Opaque(address, None): the object could not be read


class CodeVars(NamedTuple):
    """What a code object says about its frames' variable slots."""

    names: tuple[str, ...]  #: per slot
    deref: tuple[bool, ...]  #: per slot: a cell or free variable (a cell, read through)
    args: frozenset[int]  #: the slots that hold parameters


def frame_chain(target: PythonTarget, tstate: int) -> list[tuple[int, int]]:
    """(frame address, code address) of a thread's Python frames, innermost first: the
    frames the walker reports for it, read again one by one (see the module docstring).
    A read that fails ends the chain where it is."""
    lay = target.layout
    mem = target.memory
    out: list[tuple[int, int]] = []
    try:
        (addr,) = _Q.unpack(mem.read(tstate + lay.tstate_frame, 8))
        if lay.cframe_current_frame is not None:  # 3.11/3.12: through the _PyCFrame
            if bad_pointer(addr):
                return out
            (addr,) = _Q.unpack(mem.read(addr + lay.cframe_current_frame, 8))
        seen: set[int] = set()
        frame_type = target.symbols.get("PyFrame_Type")
        none = target.symbols.get("_Py_NoneStruct", -1)
        skip_owner = lay.owner_skip_from if lay.owner_skip_from is not None else 256
        tags = lay.code_tag_bits
        fields = [lay.ob_type, lay.frame_code, lay.frame_back, lay.frame_owner or 0]
        span = max(fields) + 8
        while addr and len(out) < MAX_DEPTH and addr not in seen:
            if bad_pointer(addr):
                break
            seen.add(addr)
            raw = mem.read(addr, span)
            (code,) = _Q.unpack_from(raw, lay.frame_code)
            (back,) = _Q.unpack_from(raw, lay.frame_back)
            if lay.frame_objects:
                (ob_type,) = _Q.unpack_from(raw, lay.ob_type)
                if frame_type is not None and ob_type != frame_type:
                    break
                out.append((addr, code))
            else:
                assert lay.frame_owner is not None
                owner = raw[lay.frame_owner]
                python_call = owner < skip_owner and not (
                    tags and (code & tags == tags or code == 1)
                )
                code &= ~tags
                if python_call and code != none:
                    out.append((addr, code))
            addr = back
    except ReadError:
        pass
    return out


class LocalsReader:
    """Reads frames' variables through one object reader; code objects' names are kept
    between calls (a dump's frames share their code)."""

    def __init__(self, target: PythonTarget, objects: ObjectReader, limits: Limits) -> None:
        self.target = target
        self.objects = objects
        self.limits = limits
        self._codes: dict[int, CodeVars | None] = {}

    def read(self, frames: Sequence[tuple[int, int]]) -> list[tuple[Local, ...] | None]:
        """Each frame's bound variables, in slot order (parameters first); None where the
        frame's code or slots cannot be read.

        All frames at once, each step one batch (the object reader's plans side by
        side): the slot arrays, then the cells, then the values. A dump reads while the
        target is held, so a 500-frame recursion costs a few system calls a level of
        its values' graphs, not a few per frame."""
        off = self.objects.off
        if off is None or off.frame_localsplus is None:
            return [None] * len(frames)
        infos = []
        for _, code in frames:
            if code not in self._codes:
                self._codes[code] = self._code_vars(code)
            infos.append(self._codes[code])
        ranges = [
            (frame + off.frame_localsplus, 8 * len(info.names) if info is not None else 0)
            for (frame, _), info in zip(frames, infos)
        ]
        arrays = self.objects.run(together([read(a, n) for a, n in ranges]))
        # per frame, its bound slots as [slot, object address] (None: unreadable)
        slots = [
            None if info is None or raw is None else self._slots(raw)
            for info, raw in zip(infos, arrays)
        ]
        deref = [
            s
            for info, found in zip(infos, slots)
            if info is not None and found is not None
            for s in found
            if info.deref[s[0]]
        ]
        for s, cell in zip(deref, self.objects.cells([a for _, a in deref])):
            if cell is not None:  # a cell: its contents (None: not a cell, read as it is)
                s[1] = cell.value  # 0: an empty cell, an unbound variable
        bound = [[s for s in found if s[1]] if found is not None else None for found in slots]
        # each object once, however many frames hold it (an argument passed down)
        unique = list(dict.fromkeys(a for found in bound if found is not None for _, a in found))
        values = dict(zip(unique, self.objects.values(unique, self.limits)))
        out: list[tuple[Local, ...] | None] = []
        for info, found in zip(infos, bound):
            if info is None or found is None:
                out.append(None)
                continue
            locals_ = []
            for i, a in found:
                v = values[a]
                value = Opaque(a, None) if v is None else v.value
                locals_.append(Local(info.names[i], i in info.args, value))
            out.append(tuple(locals_))
        return out

    def _slots(self, raw: bytes) -> list[list[int]]:
        """The non-empty slots of a fast-locals array, as [slot, object address]."""
        tags = self.target.layout.code_tag_bits
        found = []
        for i, (word,) in enumerate(_Q.iter_unpack(raw)):
            if tags and word & tags == tags:
                continue  # a tagged int (3.14): an interpreter temporary, not a variable
            word &= ~tags
            if word:
                found.append([i, word])
        return found

    def _code_vars(self, code: int) -> CodeVars | None:
        """Names and kinds of a code object's slots; None if it cannot be read whole."""
        off = self.objects.offsets
        lay = self.target.layout
        assert off.code_argcount is not None and off.code_flags is not None
        newer = off.code_localsplusnames is not None
        if newer:
            assert off.code_localspluskinds is not None
            words = [off.code_localsplusnames, off.code_localspluskinds]
        else:
            assert off.code_varnames is not None
            assert off.code_cellvars is not None and off.code_freevars is not None
            words = [off.code_varnames, off.code_cellvars, off.code_freevars]
        ints = [off.code_argcount, off.code_flags]
        if off.code_kwonlyargcount is not None:
            ints.append(off.code_kwonlyargcount)
        span = max(words + ints) + 8
        if bad_pointer(code):
            return None
        try:
            head = self.target.memory.read(code, span)
        except ReadError:
            return None
        code_type = self.target.symbols.get("PyCode_Type")
        if code_type is not None and _Q.unpack_from(head, lay.ob_type)[0] != code_type:
            return None
        argcount, flags, *kwonly = (_I.unpack_from(head, o)[0] for o in ints)
        nargs = argcount + sum(kwonly)
        nargs += bool(flags & (off.co_varargs or 0)) + bool(flags & (off.co_varkeywords or 0))
        tuples = [_Q.unpack_from(head, w)[0] for w in words]
        if newer:
            names = self._names(tuples[0])
            got = self.objects.bytestrings([tuples[1]])[0]
            if names is None or got is None or len(got.value) != len(names):
                return None
            assert off.fast_cell is not None and off.fast_free is not None
            cell_or_free = off.fast_cell | off.fast_free
            deref = tuple(bool(k & cell_or_free) for k in got.value)
            return CodeVars(names, deref, frozenset(range(min(nargs, len(names)))))
        groups = [self._names(t) for t in tuples]
        if any(g is None for g in groups):
            return None
        varnames, cellvars, freevars = (g or () for g in groups)
        arg_names = set(varnames[:nargs])
        names = varnames + cellvars + freevars
        deref = (False,) * len(varnames) + (True,) * (len(cellvars) + len(freevars))
        args = frozenset(i for i, name in enumerate(names) if name in arg_names)
        return CodeVars(names, deref, args)

    def _names(self, tuple_addr: int) -> tuple[str, ...] | None:
        """The strs of a tuple of names; None if any cannot be read."""
        got = self.objects.sequences([tuple_addr], MAX_SLOTS)[0]
        if got is None or got.value.length > MAX_SLOTS:
            return None
        names = self.objects.strs(list(got.value.addresses), utf8_safe=True)
        if any(n is None for n in names):
            return None
        return tuple(n.value for n in names if n is not None)

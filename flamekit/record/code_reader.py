"""Code objects in the target: their contents, and a cheap check that they are still them.

A stack sample names each frame by its code object's address. The recorder copies a
code object's contents into the trace once (:meth:`CodeReader.read_code`): names, file,
first line and the raw line table, to be decoded offline by ``flamekit.symbolize``.

Addresses are reused: a code object can be freed (an ``exec``'d snippet, a reloaded
module) and another allocated at the same place. :meth:`CodeReader.fingerprints` reads
a few header words of many code objects in ONE vectored read; if a code's fingerprint
differs from the one recorded with its contents, the address now holds a different
code (or no code at all) and must be read again under a new trace ref.

Fingerprint API::

    fps = reader.fingerprints(addrs)      # list, same order; one process_vm_readv
    fps[i] is None                         # unreadable, or not a code object (anymore)
    fps[i] == known[addrs[i]]              # same code object as when first read

A fingerprint is an opaque tuple of header words, compared with ``==``: ob_type,
co_firstlineno and the co_filename, co_name, co_qualname (3.11+) and line-table
pointers, in the layout's field order. All are set when the code is created and never
change, and together they pin down everything the trace stores about it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flamekit.record.layout import Layout
from flamekit.record.objects import ObjectReader, Read
from flamekit.record.objects.plans import Plan, together
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.trace import records as R

Fingerprint = tuple[int, ...]


@dataclass(frozen=True)
class CodeInfo:
    """What the trace records about one code object."""

    address: int
    name: str
    qualname: str | None  #: 3.11+ only
    filename: str
    firstlineno: int
    linetable: bytes  #: co_lnotab (<= 3.9) or co_linetable, raw
    linetable_format: int  #: a flamekit.codeformat id
    fingerprint: Fingerprint

    def record(self, ref: int, pid: int) -> R.Code:
        """The trace's CODE record of this code object, under trace ref ``ref``."""
        return R.Code(
            ref,
            pid,
            self.address,
            self.name,
            self.qualname,
            self.filename,
            self.firstlineno,
            self.linetable,
            self.linetable_format,
        )


class CodeError(ReadError):
    """The address does not hold a (readable) code object."""


def _struct_at(fields: list[tuple[int, str]], start: int) -> tuple[struct.Struct, list[int]]:
    """A Struct reading ``fields`` [(offset, format char)] from a buffer at ``start``.

    Returns the Struct (fields in offset order) and, for each input field, its index in
    the unpacked tuple.
    """
    order = sorted(range(len(fields)), key=lambda i: fields[i][0])
    fmt = ["<"]
    pos = start
    for i in order:
        off, ch = fields[i]
        if off < pos:
            raise ValueError("overlapping fields")
        if off > pos:
            fmt.append(f"{off - pos}x")
        fmt.append(ch)
        pos = off + struct.calcsize("<" + ch)
    index = [0] * len(fields)
    for rank, i in enumerate(order):
        index[i] = rank
    return struct.Struct("".join(fmt)), index


class CodeReader:
    """Reads code objects of one target. Cheap to create; caches nothing big."""

    def __init__(self, target: PythonTarget) -> None:
        self.target = target
        self.memory = target.memory
        lay: Layout = target.layout
        self.layout = lay
        self.code_type = target.symbols.get("PyCode_Type", 0)

        start, length = lay.code_span()
        #: A code object's header, as read for fingerprints: ``span_len`` bytes from
        #: ``address + span_start`` (ob_type through the line-table pointer; no refcount).
        self.span_start = start
        self.span_len = length
        fields = [
            (lay.ob_type, "Q"),
            (lay.code_firstlineno, "i"),
            (lay.code_filename, "Q"),
            (lay.code_name, "Q"),
            (lay.code_linetable, "Q"),
        ]
        if lay.code_qualname is not None:
            fields.append((lay.code_qualname, "Q"))
        self._fp_struct, idx = _struct_at(fields, start)
        self._fp_index = idx
        self._type_index = idx[0]
        # Fast path: when the unpack order already is (type, line, file, name[, qual], table)
        self._qual = lay.code_qualname is not None

        #: Names, files and line tables are str and bytes objects: read as such, by the
        #: object reader that thread names share.
        self.objects = ObjectReader(target)

    # -- identity ----------------------------------------------------------------------

    def fingerprint_from(self, buf: bytes, offset: int) -> Fingerprint | None:
        """The fingerprint in a header the caller read itself: ``span_len`` bytes from
        ``address + span_start``, found at ``offset`` in ``buf``. None: not a code object.

        For callers batching their own reads (one vectored read of many headers, or a
        byte-for-byte comparison of whole headers before decoding any)."""
        t = self._fp_struct.unpack_from(buf, offset)
        if t[self._type_index] != self.code_type:
            return None
        return t

    _fingerprint = fingerprint_from  # the name the sampler first used

    def fingerprints(self, addresses: Sequence[int]) -> list[Fingerprint | None]:
        """Fingerprints of many code objects in one vectored read (see module docs).

        ``None`` for an address that is unreadable or does not hold a code object.
        """
        n = len(addresses)
        out: list[Fingerprint | None] = []
        start = self.span_start
        size = self.span_len
        pending = [a + start for a in addresses]
        fp = self.fingerprint_from
        while len(out) < n:
            data, k = self.memory.read_uniform(pending[len(out) :], size)
            for j in range(k):
                out.append(fp(data, j * size))
            if len(out) < n:
                out.append(None)  # the range the kernel stopped at
        return out

    def fingerprint(self, address: int) -> Fingerprint | None:
        return self.fingerprints([address])[0]

    # -- contents ----------------------------------------------------------------------

    def read_code(self, address: int) -> CodeInfo:
        """Names, file, first line and raw line table of the code object at ``address``.

        Two or three reads: the header, then the strings and the line table (through
        the object reader: their headers, and with them the contents of most; the rest
        of the contents). Raises CodeError if it is not a code object or its fields are
        not what a code object holds (memory reused meanwhile).
        """
        lay = self.layout
        try:
            header = self.memory.read(address + self.span_start, self.span_len)
        except ReadError as e:
            raise CodeError(f"cannot read code object at {address:#x}", address) from e
        fp = self.fingerprint_from(header, 0)
        if fp is None:
            raise CodeError(f"no code object at {address:#x}", address)
        i = self._fp_index
        firstlineno, filename_p, name_p, table_p = fp[i[1]], fp[i[2]], fp[i[3]], fp[i[4]]
        strings = [filename_p, name_p] + ([fp[i[5]]] if self._qual else [])
        texts, table = self._contents(strings, table_p)
        return CodeInfo(
            address=address,
            name=texts[1],
            qualname=texts[2] if self._qual else None,
            filename=texts[0],
            firstlineno=firstlineno,
            linetable=table,
            linetable_format=lay.linetable_format,
            fingerprint=fp,
        )

    def _contents(self, strings: list[int], table: int) -> tuple[list[str], bytes]:
        """The text of the name and file str objects and the line table's bytes, read
        together; names as the trace holds them (lone surrogates as U+FFFD, as ever)."""
        objects = self.objects
        if objects.off is None:
            raise CodeError("cannot read this interpreter's objects", strings[0])
        plans: list[Plan[Read[Any] | None]] = [objects.str_plan(p, True) for p in strings]
        plans.append(objects.bytes_plan(table))
        *texts, got = objects.run(together(plans))
        for p, text in zip(strings, texts):
            if text is None or type(text.value) is not str:
                raise CodeError(f"object at {p:#x} is not a readable str", p)
        if got is None or type(got.value) is not bytes:
            raise CodeError(f"line table at {table:#x} is not a readable bytes object", table)
        return [t.value for t in texts if t is not None], got.value

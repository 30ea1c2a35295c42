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

from flamekit.record.layout import Layout
from flamekit.record.proc.memory import ReadError
from flamekit.record.target import PythonTarget
from flamekit.trace import records as R

#: Longest string or line table we copy (a sanity bound against corrupt lengths).
MAX_OBJECT_BYTES = 1 << 20

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
    """Reads code objects and strings of one target. Cheap to create; caches nothing big."""

    def __init__(self, target: PythonTarget) -> None:
        self.target = target
        self.memory = target.memory
        lay: Layout = target.layout
        self.layout = lay
        sym = target.symbols
        self.code_type = sym.get("PyCode_Type", 0)
        self.py2 = lay.version[0] == 2
        if self.py2:  # names, files and line tables are all 8-bit str objects
            self.str_type = self.bytes_type = sym.get("PyString_Type", 0)
        else:
            self.str_type = sym.get("PyUnicode_Type", 0)
            self.bytes_type = sym.get("PyBytes_Type", 0)

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

        self._str_subtypes: dict[int, bool] = {}
        #: Py_TPFLAGS_UNICODE_SUBCLASS (3.x) / Py_TPFLAGS_STRING_SUBCLASS (2.7)
        self._subclass_flag = 1 << 27 if self.py2 else 1 << 28
        if not self.py2:
            assert lay.unicode_state is not None and lay.unicode_compact_size is not None
            self._str_header = lay.unicode_compact_size + 8
        else:
            self._str_header = lay.bytes_data

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

        Three reads: the header, the string/bytes headers, their contents. Raises
        CodeError if it is not a code object, ReadError if memory vanished meanwhile.
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
        qual_p = fp[i[5]] if self._qual else 0
        strings = [filename_p, name_p] + ([qual_p] if lay.code_qualname is not None else [])
        texts, table = self._read_objects(strings, table_p)
        return CodeInfo(
            address=address,
            name=texts[1],
            qualname=texts[2] if len(texts) > 2 else None,
            filename=texts[0],
            firstlineno=firstlineno,
            linetable=table,
            linetable_format=lay.linetable_format,
            fingerprint=fp,
        )

    def read_string(self, address: int) -> str:
        """A str object (PEP 393 on 3.x, PyStringObject on 2.7) as a Python str."""
        return self._read_objects([address], None)[0][0]

    def _read_objects(self, strs: list[int], table: int | None) -> tuple[list[str], bytes]:
        lay = self.layout
        hsize = self._str_header
        bsize = lay.bytes_data
        for p in strs + ([table] if table is not None else []):
            if p == 0 or p & 7:
                raise CodeError(f"bad object pointer {p:#x}", p)
        ranges = [(p, hsize) for p in strs]
        if table is not None:
            ranges.append((table, bsize))
        try:
            heads = self.memory.read_ranges(ranges)
        except ReadError as e:
            raise CodeError(str(e), e.address) from e
        plans = []
        data_ranges = []
        for i, p in enumerate(strs):
            plan = self._plan_string(heads, i * hsize, p)
            plans.append(plan)
            if plan[1] > 0:
                data_ranges.append((plan[0], plan[1]))
        tlen = 0
        if table is not None:
            off = len(strs) * hsize
            (tptr_type,) = struct.unpack_from("<Q", heads, off + lay.ob_type)
            if tptr_type != self.bytes_type:
                raise CodeError(f"line table at {table:#x} is not a bytes object", table)
            (tlen,) = struct.unpack_from("<q", heads, off + lay.ob_size)
            if not 0 <= tlen <= MAX_OBJECT_BYTES:
                raise CodeError(f"implausible line table length {tlen}", table)
            if tlen:
                data_ranges.append((table + bsize, tlen))
        try:
            blob = self.memory.read_ranges(data_ranges) if data_ranges else b""
        except ReadError as e:
            raise CodeError(str(e), e.address) from e
        texts = []
        pos = 0
        for _, nbytes, encoding in plans:
            texts.append(blob[pos : pos + nbytes].decode(encoding, "replace"))
            pos += nbytes
        return texts, blob[pos : pos + tlen]

    def _is_str_subclass(self, type_address: int) -> bool:
        """Whether a type is a subclass of str (code objects accept those as names).

        Instances of str subclasses are never compact: their characters live in a separate
        buffer, which is how the legacy (non-compact) PEP 393 layout still shows up."""
        known = self._str_subtypes.get(type_address)
        if known is None:
            known = False
            if type_address and not type_address & 7:
                try:
                    raw = self.memory.read(type_address + self.layout.type_flags, 8)
                    known = bool(struct.unpack("<Q", raw)[0] & self._subclass_flag)
                except ReadError:
                    known = False
            if len(self._str_subtypes) < 1024:
                self._str_subtypes[type_address] = known
        return known

    def _plan_string(self, heads: bytes, off: int, address: int) -> tuple[int, int, str]:
        """(data address, byte length, codec) of the string whose header is at ``off``."""
        lay = self.layout
        (ob_type,) = struct.unpack_from("<Q", heads, off + lay.ob_type)
        if ob_type != self.str_type and not self._is_str_subclass(ob_type):
            raise CodeError(f"object at {address:#x} is not a str", address)
        if self.py2:
            (size,) = struct.unpack_from("<q", heads, off + lay.ob_size)
            if not 0 <= size <= MAX_OBJECT_BYTES:
                raise CodeError(f"implausible str length {size}", address)
            return address + lay.bytes_data, size, "utf-8"
        assert lay.unicode_length is not None and lay.unicode_state is not None
        (length,) = struct.unpack_from("<q", heads, off + lay.unicode_length)
        (state,) = struct.unpack_from("<I", heads, off + lay.unicode_state)
        kind = state >> lay.unicode_kind_shift & 7  # type: ignore[operator]
        compact = state >> lay.unicode_compact_shift & 1  # type: ignore[operator]
        ascii_ = state >> lay.unicode_ascii_shift & 1  # type: ignore[operator]
        if kind not in (1, 2, 4):
            raise CodeError(f"str at {address:#x} has unknown kind {kind}", address)
        nbytes = length * kind
        if not 0 <= nbytes <= MAX_OBJECT_BYTES:
            raise CodeError(f"implausible str length {length}", address)
        codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
        if compact:
            start = lay.unicode_ascii_size if ascii_ else lay.unicode_compact_size
            return address + start, nbytes, codec  # type: ignore[operator]
        # Legacy (non-compact) string: the data pointer follows PyCompactUnicodeObject.
        (data,) = struct.unpack_from("<Q", heads, off + lay.unicode_compact_size)  # type: ignore[operator]
        if data == 0 or nbytes and data & 1:
            raise CodeError(f"str at {address:#x} has no data", address)
        return data, nbytes, codec

"""Line-table formats and instruction-offset conventions shared by recorder and symbolizer.

The recorder stores each code object's line table as raw bytes plus one of these ids;
the symbolizer decodes them offline. Ids are part of the FKT format: never renumber.
"""

from __future__ import annotations

#: No line table was available; every offset maps to ``co_firstlineno``.
LINETABLE_NONE = 0
#: ``co_lnotab`` of CPython 2.7: (addr_incr u8, line_incr u8) pairs.
LNOTAB_UNSIGNED = 1
#: ``co_lnotab`` of CPython 3.6-3.9: (addr_incr u8, line_incr int8) pairs.
LNOTAB_SIGNED = 2
#: ``co_linetable`` of CPython 3.10: (byte span u8, line delta int8; -128 = no line) pairs.
LINETABLE_310 = 3
#: The location table of CPython 3.11 and later (PEP 626 / 657 entries in 2-byte code units).
LOCATIONS_311 = 4

ALL_FORMATS = (LINETABLE_NONE, LNOTAB_UNSIGNED, LNOTAB_SIGNED, LINETABLE_310, LOCATIONS_311)

#: An instruction offset in an FKT stack is the byte offset, from the start of the code
#: object's bytecode, of the instruction the frame is executing (3.10: 2 * f_lasti;
#: 3.11+: instruction pointer minus the start of the inline bytecode). Negative means
#: the frame has not started executing; it maps to ``co_firstlineno``.
NOT_STARTED = -1


def format_for_version(major: int, minor: int) -> int:
    """The line-table format a CPython ``major.minor`` stores in its code objects."""
    if major == 2:
        return LNOTAB_UNSIGNED
    if (major, minor) < (3, 10):
        return LNOTAB_SIGNED
    if (major, minor) == (3, 10):
        return LINETABLE_310
    return LOCATIONS_311

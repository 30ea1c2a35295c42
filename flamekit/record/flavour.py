"""Which kind of CPython build a target is, told from the symbols its ELF file exports.

Offsets are per build flavour, not only per version: before 3.8 a ``--with-pydebug``
build has Py_TRACE_REFS, two more pointers (``_ob_next``, ``_ob_prev``) at the head of
every object, so nothing is where a release build has it. Each layout table entry lists
the flavours its offsets hold for ("builds", measured by tools/gen_layouts.py); a target
of any other flavour is refused, never read with a wrong layout.

The tells are functions CPython defines only in those builds, and exports from every
one of them (``PyAPI_FUNC``, in the dynamic symbol table even of a stripped file):

* ``_Py_NegativeRefcount``: Py_REF_DEBUG, which every ``--with-pydebug`` build has
  (2.7 to 3.14; Py_DECREF calls it when a count goes below zero). Release builds never
  define it. (``_Py_RefTotal`` is a tell up to 3.11 only.)
* ``_Py_PrintReferences``: Py_TRACE_REFS, the extra object header (every debug build
  before 3.8, ``--with-trace-refs`` from 3.8).

2.7 has one more build option that moves data: ``--enable-unicode=ucs2|ucs4``, the
width of a ``unicode`` object's characters. Its API functions are renamed after it
(``PyUnicodeUCS2_FromString``, ``PyUnicodeUCS4_FromString``).
"""

from __future__ import annotations

from collections.abc import Callable

RELEASE = "release"

#: (flavour part, the symbol exported only by builds that have it), in naming order.
TELLS = (("debug", "_Py_NegativeRefcount"), ("trace-refs", "_Py_PrintReferences"))

#: 2.7's Py_UNICODE width in bytes, by a symbol only a build of that width exports.
PY2_UNICODE_TELLS = ((4, "PyUnicodeUCS4_FromString"), (2, "PyUnicodeUCS2_FromString"))


def build_flavour(exported: Callable[[str], int | None]) -> str:
    """ "release", "debug", "trace-refs" or "debug+trace-refs": the name the layout tables
    use (tools/gen_layouts.py gives a build compiled with these macros the same name).
    ``exported`` looks a name up in the dynamic symbol table (None: not there)."""
    parts = [part for part, symbol in TELLS if exported(symbol) is not None]
    return "+".join(parts) or RELEASE


def py2_unicode_size(exported: Callable[[str], int | None]) -> int | None:
    """Bytes per character of a 2.7 build's unicode objects; None if it does not say."""
    return next((size for size, symbol in PY2_UNICODE_TELLS if exported(symbol) is not None), None)


def describe(flavour: str) -> str:
    """How a user knows the flavour: its configure option."""
    return {
        "debug": "a debug build (--with-pydebug)",
        "debug+trace-refs": "a debug build (--with-pydebug, with Py_TRACE_REFS)",
        "trace-refs": "a --with-trace-refs build",
    }.get(flavour, f"a {flavour} build")

"""C++ names as people read them: ``np::qsort_simd::QSort_X86_V3<double>(double*, long,
bool)`` rather than ``_ZN2np10qsort_simd12QSort_X86_V3IdEEvPT_lb``.

numpy, scipy, pandas, PyTorch and most C++ extensions name their hot functions in the
Itanium ABI's mangling. The demangler is the C++ runtime's own ``__cxa_demangle``
(libstdc++, the one ``c++filt`` and gdb agree with), called through ctypes: nothing to
build, and a grammar of hundreds of rules not rewritten here. Where no C++ runtime can be
loaded, or a name does not demangle, the name stays as the symbol table has it: mangled
is still exact, never wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

_RUNTIMES = ("libstdc++.so.6", "libc++abi.so.1", "libc++.so.1")


@lru_cache(maxsize=1)
def _cxa_demangle():  # noqa: ANN202 - a ctypes function or None
    names = [*_RUNTIMES, ctypes.util.find_library("stdc++")]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            libc = ctypes.CDLL(None)
        except OSError:
            continue
        fn = getattr(lib, "__cxa_demangle", None)
        if fn is None:
            continue
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_int)]  # fmt: skip
        free = libc.free
        free.argtypes = [ctypes.c_void_p]
        free.restype = None
        return fn, free
    return None


@lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """``name`` demangled if it is an Itanium C++ name (``_Z...``, with a compiler's
    clone suffixes such as ``.constprop.0``), else ``name`` itself."""
    if not name.startswith("_Z"):
        return name
    got = _cxa_demangle()
    if got is None:
        return name
    fn, free = got
    status = ctypes.c_int(-1)
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return name
    ptr = fn(raw, None, None, ctypes.byref(status))
    if not ptr:
        return name
    try:
        out = ctypes.string_at(ptr)
    finally:
        free(ptr)
    if status.value != 0:
        return name
    return out.decode("utf-8", "replace")

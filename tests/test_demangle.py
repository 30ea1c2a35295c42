"""C++ names demangled as binutils' ``c++filt`` (the real reader people check a name
with) demangles them: every mangled function of the C++ runtime's own symbol table, and
compiler clones of them; anything else unchanged."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.symbolize.demangle import demangle
from flamekit.symbolize.native import SymbolTable


def _runtime() -> str:
    for cand in (
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
    ):
        if os.path.exists(cand):
            return cand
    pytest.skip("no libstdc++ on this machine: nothing mangled to read")


#: The ABI's standard abbreviations, which the C++ runtime's demangler keeps (shorter)
#: and c++filt spells out: the same names.
_STD = {
    "std::string": "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
    "std::istream": "std::basic_istream<char, std::char_traits<char> >",
    "std::ostream": "std::basic_ostream<char, std::char_traits<char> >",
    "std::iostream": "std::basic_iostream<char, std::char_traits<char> >",
}


def _spaced(name: str) -> str:
    """Templates closed as c++filt closes them (``> >``; the runtime writes ``>>``)."""
    while ">>" in name:
        name = name.replace(">>", "> >")
    return name


def _expanded(name: str) -> str:
    for short, full in _STD.items():
        name = re.sub(re.escape(short) + r"(?![\w<])", full, name)
    return name


@pytest.mark.skipif(shutil.which("c++filt") is None, reason="binutils' c++filt is not installed")
def test_names_read_as_cxxfilt_reads_them():
    got = SymbolTable.read(_runtime())
    assert got is not None
    mangled = sorted({n for _, _, n in got[0].rows if n.startswith("_Z")})
    assert len(mangled) >= 1000, len(mangled)  # the runtime's C++ API
    names = [
        *mangled,
        *(f"{n}.constprop.0" for n in mangled[:200]),
        *(f"{n}.part.0" for n in mangled[200:400]),
    ]
    want = subprocess.run(
        ["c++filt"], input="\n".join(names) + "\n", capture_output=True, text=True, check=True
    ).stdout.splitlines()
    ours = [_expanded(demangle(n)) for n in names]
    differ = [(n, o, w) for n, o, w in zip(names, ours, want) if _spaced(o) != _spaced(w)]
    assert len(want) == len(names)
    assert not differ, differ[:5]
    assert sum(o != n for o, n in zip(ours, names)) == len(names)  # every one demangled


@given(st.text(max_size=60))
def test_what_is_not_a_cxx_name_stays_as_it_is(name):
    got = demangle(name)
    if not name.startswith("_Z"):
        assert got == name
    else:
        assert isinstance(got, str) and got


def test_a_broken_mangled_name_stays_mangled():
    assert demangle("_ZN3foo") == "_ZN3foo"

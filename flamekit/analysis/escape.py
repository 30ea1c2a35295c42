"""One escaper for names in every text output: a name from a trace never acts on a terminal.

Names come from the target (function, file and thread names, the command line, the host's
name) and may hold anything: a newline would split a table row, an ESC sequence would
recolour or retitle the user's terminal, a lone surrogate cannot be written as UTF-8 at
all. Every text output (``top``, ``info``, the ``diff`` table, ``dump``) shows such a
character as a visible escape instead, the same way everywhere:
``\\xNN`` below U+0100, ``\\uNNNN`` above. Formats with a grammar of their own (folded
stacks, SVG) build their escaper from the same class with :func:`escaper`, so a name
reads the same in a table and in a flame graph.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

#: The characters no text output shows raw, as a regular-expression class: C0 controls
#: (NUL, TAB, LF, CR, ESC among them), DEL, C1 controls (CSI, NEL, OSC among them), the
#: Unicode line and paragraph separators, and lone surrogates.
UNPRINTABLE = "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"

_NONE: Mapping[str, str] = MappingProxyType({})


def escape_char(c: str) -> str:
    """The visible escape of one character: ``\\xNN`` below U+0100, else ``\\uNNNN``."""
    cp = ord(c)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def escaper(also: str = "", spelled: Mapping[str, str] = _NONE) -> Callable[[str], str]:
    """A function escaping :data:`UNPRINTABLE` and the characters of ``also``.

    ``spelled`` gives some characters another escape than :func:`escape_char`'s (folded
    stacks write ``\\`` as ``\\\\``). One regular-expression pass: a name with nothing to
    escape costs one scan in C.
    """
    pattern = re.compile(f"[{UNPRINTABLE}{re.escape(also)}]")

    def sub(m: re.Match[str]) -> str:
        c = m.group()
        return spelled.get(c) or escape_char(c)

    def escape(text: str) -> str:
        return pattern.sub(sub, text)

    return escape


#: ``text`` with every unprintable character escaped: one row stays one terminal line and
#: nothing in it reaches the terminal as a control sequence.
printable: Callable[[str], str] = escaper()

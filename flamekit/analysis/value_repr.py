"""Short, bounded reprs of a live process's values: what ``dump --locals`` prints.

The recorder hands over raw values (flamekit.record.objects): plain Python values for
what it read whole, and three shapes of its own, known here only by their attributes
(the analysis layer does not import the recorder): a *cut* value (``kind``, ``head``,
``length``: a str, bytes or container a read limit cut), an *opaque* object
(``address``, ``type_name``; no type name: it could not be read) and a *type*
(``address``, ``name``).

The same bounds apply here whatever the value, so a value the reader cut and the same
value whole render alike (tests compare a target's values so): at most ``chars``
characters of a str (bytes of a bytes, digits of an int), ``items`` items of a
container and ``depth`` levels of containers opened, every cut shown as ``…``; the whole
repr is cut at ``width``. A set's items are sorted by their reprs: its order is its
hash table's, which a str's per-process hash makes arbitrary. Self-reference ends at
the depth bound, like everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

#: The cut marker.
CUT = "…"
#: How an object that could not be read (or not trusted) shows.
UNREADABLE = "<unreadable>"


@dataclass(frozen=True)
class Bounds:
    """How much of a value a repr shows (and ``dump`` reads: the same numbers)."""

    depth: int = 2  #: levels of containers opened (0: a container shows as ``[…]``)
    items: int = 8  #: first items of a container
    chars: int = 80  #: first characters of a str, bytes of a bytes, digits of an int
    width: int = 400  #: longest repr, whole


@runtime_checkable
class Cut(Protocol):
    """A value a read limit cut (flamekit.record.objects.Partial)."""

    kind: type
    head: Any
    length: int


@runtime_checkable
class Opaque(Protocol):
    """An object shown by its type's name (flamekit.record.objects.Opaque)."""

    address: int
    type_name: str | None


@runtime_checkable
class TypeRef(Protocol):
    """A class (flamekit.record.objects.TypeRef)."""

    address: int
    name: str


def short_repr(value: object, bounds: Bounds = Bounds()) -> str:
    """``value``'s repr within ``bounds`` (see the module docstring)."""
    text = _repr(value, bounds, bounds.depth)
    if len(text) > bounds.width:
        text = text[: max(bounds.width - len(CUT), 0)] + CUT
    return text


def _repr(value: object, b: Bounds, depth: int) -> str:
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return _int(value, b)
    if isinstance(value, (str, bytes)):
        return _text(value, len(value), b)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        items = list(value.items()) if isinstance(value, dict) else list(value)
        return _container(type(value), items, len(value), b, depth)
    if isinstance(value, Cut):
        if value.kind in (str, bytes):
            return _text(value.head, value.length, b)
        return _container(value.kind, list(value.head), value.length, b, depth)
    if isinstance(value, Opaque):
        if value.type_name is None:
            return UNREADABLE
        return f"<{value.type_name} object at {value.address:#x}>"
    if isinstance(value, TypeRef):
        return f"<class '{value.name}'>"
    return f"<{type(value).__name__} object at {id(value):#x}>"


#: log10(2): decimal digits per bit.
_DIGITS_PER_BIT = 0.30102999566398120


def _int(value: int, b: Bounds) -> str:
    try:
        text = str(value)
    except ValueError:
        # Past this interpreter's int-to-str digit limit (3.11+: 4,300 digits; the
        # reader reads ints of up to ~37,000): only the leading digits are shown, so
        # only they are made, by dropping all but a few more than those.
        magnitude = abs(value)
        drop = int(magnitude.bit_length() * _DIGITS_PER_BIT) - min(b.chars, 4000) - 2
        text = ("-" if value < 0 else "") + str(magnitude // 10**drop)
        return text[: b.chars] + CUT
    return text if len(text) <= b.chars else text[: b.chars] + CUT


def _text(head: str | bytes, length: int, b: Bounds) -> str:
    shown = head[: b.chars]
    return repr(shown) + (CUT if length > len(shown) else "")


#: (opening, closing) of each container's repr.
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
    dict: ("{", "}"),
}
_EMPTY = {list: "[]", tuple: "()", set: "set()", frozenset: "frozenset()", dict: "{}"}


def _container(kind: type, items: list[Any], length: int, b: Bounds, depth: int) -> str:
    """A container of ``length`` items of which ``items`` (a dict's: pairs) were read."""
    base = next((k for k in _BRACKETS if issubclass(kind, k)), list)
    if length == 0 and not items:
        return _EMPTY[base]
    opening, closing = _BRACKETS[base]
    if depth <= 0:
        return opening + CUT + closing
    shown = items[: b.items]
    one: Callable[[Any], str]
    if base is dict:

        def one(pair: Any) -> str:
            return f"{_repr(pair[0], b, depth - 1)}: {_repr(pair[1], b, depth - 1)}"
    else:

        def one(item: Any) -> str:
            return _repr(item, b, depth - 1)

    parts = [one(item) for item in shown]
    if base in (set, frozenset):
        parts.sort()
    if length > len(shown):
        parts.append(CUT)
    elif base is tuple and len(parts) == 1:
        return f"({parts[0]},)"
    return opening + ", ".join(parts) + closing

"""What the object reader hands back: values with the checks that confirm them.

Plain Python values where the object was read whole (str, bytes, int, float, bool, None,
tuple, list, dict, set, frozenset); :class:`Partial` where a limit cut it, :class:`Opaque` for an object
of a type not decoded (or beyond the depth limit, or unreadable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar, Union

from flamekit.record.objects.parse import Q
from flamekit.record.objects.plans import Check, check

T = TypeVar("T")


@dataclass
class Read(Generic[T]):
    """A value read from the target, and the bytes it was read from.

    ``checks`` read back unchanged (:meth:`ObjectReader.hold`) means the value was the
    object's at that instant; a caller that needs no such certainty ignores them.
    (Treat as immutable; not frozen, with slots, as a lookup makes dozens: a frozen
    dataclass is several times slower to make.)"""

    __slots__ = ("value", "checks")
    value: T
    checks: tuple[Check, ...]


class Entry(NamedTuple):
    """One used slot of a dict: the key and value object addresses, and where they sit."""

    slot: int  #: position in the entries array (a split dict's values are indexed so)
    hash: int  #: the stored hash; -1 where entries hold none (3.11+ str-keyed tables)
    key: int
    value: int  #: 0 for a split table's keys listed without values
    key_at: int
    value_at: int

    def checks(self) -> tuple[Check, Check]:
        """The entry's key and value words as they were read."""
        return check(self.key_at, Q.pack(self.key)), check(self.value_at, Q.pack(self.value))


@dataclass(frozen=True)
class Opaque:
    """An object shown by its type's name only: a type not decoded, a container below
    the depth limit's reach... (``type_name`` None: the object could not be read)."""

    address: int
    type_name: str | None


@dataclass(frozen=True)
class TypeRef:
    """A type object (a class), by its name (tp_name)."""

    address: int
    name: str


@dataclass(frozen=True)
class Partial:
    """A str, bytes, tuple, list, dict or set cut by a limit: its first part and real
    length (characters, bytes or items).

    ``head`` is of the kind's own type (for a dict: a tuple of (key, value) pairs; for a
    set or frozenset: a tuple of its items); it is empty for a container beyond the
    depth limit."""

    kind: type
    head: Any
    length: int


@dataclass(frozen=True)
class Limits:
    """How much of an object graph :meth:`ObjectReader.values` reads.

    ``depth``: levels of containers opened (0: a container is only its length);
    ``items``: first items of a tuple, list or dict; ``chars``: first characters of a
    str (bytes of a bytes)."""

    depth: int = 2
    items: int = 16
    chars: int = 256


#: What a decoded object can be.
Value = Union[
    None, bool, int, float, str, bytes, tuple, list, dict, set, frozenset, Opaque, Partial, TypeRef
]

"""Reading CPython objects from another process, for every supported version.

Code records (names, files, line tables), thread names and frames' local variables
(``dump --locals``, record/frame_locals.py) all read objects of a live target from
outside it. This package is the one reader they share: str (all PEP 393 kinds and str
subclasses; 2.7 str and unicode), bytes, int (any size), float, tuple, list, dict
(entries, lookup by str or int key, split and managed dicts), set and frozenset, cells,
instance attributes, modules and type names, for CPython 2.7 and 3.6-3.14.

* Offsets come from the generated table (tables/objects.py) and, on 3.13+, the target's
  own _Py_DebugOffsets (offsets.py); types are recognised by their address.
* Reads are batched: each object's reader is a plan, and plans run side by side, each
  step of all of them one vectored read (plans.py).
* Everything is bounded and checked for shape; garbage gives None, never an exception
  or a huge allocation (reader.py, parse.py, ../bounds.py).
* Every value comes with the checks that confirm it: re-read in one call
  (ObjectReader.hold), unchanged bytes mean the value was there at one instant.

Typical use::

    objects = ObjectReader(target)
    names = objects.strs([addr1, addr2])           # [Read[str] | None, ...]
    ok = objects.hold([r.checks for r in names if r])
    locals_ = objects.values(addrs, Limits(depth=2, items=10, chars=80))
"""

from flamekit.record.objects.plans import Check
from flamekit.record.objects.reader import Items, ObjectReader, TypeInfo
from flamekit.record.objects.values import Entry, Limits, Opaque, Partial, Read, TypeRef, Value

__all__ = [
    "Check",
    "Entry",
    "Items",
    "Limits",
    "ObjectReader",
    "Opaque",
    "Partial",
    "Read",
    "TypeInfo",
    "TypeRef",
    "Value",
]

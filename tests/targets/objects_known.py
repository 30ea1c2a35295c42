# -*- coding: utf-8 -*-
"""Target for tests/test_objects.py: known objects, and where they are.

Run, it prints ONE JSON line {"pid": ..., "ids": {name: id(obj)}, "version": [major,
minor]} (CPython's id() is the object's address; used here by the test only), then reads
commands from stdin until it closes: "mutate" changes some objects in place (see
mutate()) and answers "mutated". The test imports this file for known_objects(): the
values it compares what it reads with. Kept 2.7-compatible.
"""

# ruff: noqa: UP003, UP004, UP009, UP010, UP025 -- this file also runs on CPython 2.7
from __future__ import print_function, unicode_literals

import json
import os
import sys

PY2 = sys.version_info[0] == 2
LONG = "y" * 5000 + "\u20ac"
#: A non-ASCII key, made at run time (not interned, no UTF-8 copy cached yet).
KEY = "".join(["\u043a\u043b\u044e", "\u0447"])


class Text(type("")):
    """A str subclass: its instances are not compact (PEP 393's legacy layout)."""


class Slots(object):
    """A plain class: its instances keep attributes in a dict or values."""

    def __init__(self):
        self.alpha = 1
        self.beta = "two"


class Point(tuple):
    """A tuple subclass (what a namedtuple is)."""


class Other(object):
    pass


def known_objects():
    """name -> object. Values the reader gives back as they are come first (see
    test_objects.expected()); the last few it shows by length, name or type."""
    instance = Slots()
    other = Other()
    other.x = 1
    objects = {
        "ascii": "hello",
        "latin1": "caf\xe9",
        "ucs2": "w\xf6rker-\u03bb",
        "ucs4": "snake-\U0001f40d",
        "nonbmp_only": "\U00010000\U0010ffff",
        "subclass": Text("sub-cl\xe4ss-\u03bb"),
        "empty": "",
        "bytes": b"a\x00b\x00\xff",
        "empty_bytes": b"",
        "zero": 0,
        "minus_one": -1,
        "two_30": 2**30,
        "minus_two_100": -(2**100),
        "two_1000": 2**1000,
        "two_62": 2**62,
        "true": True,
        "false": False,
        "none": None,
        "float": 1.5,
        "minus_zero": -0.0,
        "inf": float("inf"),
        "minus_inf": float("-inf"),
        "tuple": (1, ("a", [2.5, None]), []),
        "empty_tuple": (),
        "list": [1, "two", 3.0],
        "point": Point((1, 2)),
        "dict": {"a": 1, 2: "b", (1, 2): None},
        "split": instance.__dict__,  # 3.x: a split dict (its keys are the class's)
        # shown by length, name or type:
        "long": LONG,
        "nan": float("nan"),
        "big_dict": dict((i, i * i) for i in range(100)),
        "keyed": {KEY: 5},
        "class": Slots,
        "int_type": int,
        "instance": instance,
        "other": other,
    }
    if PY2:
        objects["py2_str"] = b"plain-\xc3\xa9"
        objects["py2_latin1"] = b"caf\xe9-\xff"  # not UTF-8: Latin-1 bytes
        objects["py2_long"] = long(7)  # noqa: F821 -- 2.7's long
        objects["py2_unicode"] = "\u03bb-\U0001f40d"
    else:
        objects["surrogates"] = "\ud83d\udc0d-\udcff"
    return objects


def mutate(objects):
    """Changes a confirmed read must notice: an attribute rebound, a list grown (its
    item array moved), a dict value replaced; and one it must not: a str key filling
    in its UTF-8 cache."""
    objects["instance"].beta = "three"
    objects["list"].extend(range(100))
    objects["dict"]["a"] = 2
    key = next(iter(objects["keyed"]))
    if not PY2:  # (2.7's type() takes no unicode name)
        type(key, (), {})  # makes the key cache its UTF-8 form, in its header


def main():
    objects = known_objects()
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "ids": dict((k, id(v)) for k, v in objects.items()),
                "version": list(sys.version_info[:2]),
            }
        )
    )
    sys.stdout.flush()
    while True:
        line = sys.stdin.readline()  # (not `for line in sys.stdin`: 2.7 reads ahead)
        if not line:
            break
        if line.strip() == "mutate":
            mutate(objects)
            print("mutated")
            sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Target for tests/test_dump_locals.py: frames with known arguments and locals.

``locals_known.py READY known``: the main thread calls ``outer(...)`` (parameters of
every sort, a local of every type in make_values(), a cell variable) which calls
``inner(...)`` (a free variable), which parks; READY then gets {"pid", "foo": id(foo)}
(CPython's id() is the address). The test imports this file for make_values(): the
values it computes the expected reprs from.

``locals_known.py READY corrupt OB_TYPE LIST_ITEMS``: ``broken(...)`` holds a list
whose ob_item pointer and a str whose ob_type pointer this process overwrote with
ctypes (offsets from the test, which has them from flamekit's table), next to sound
locals; the garbage collector is off, so nothing of the target itself trips on them.

``locals_known.py READY churn``: ``churn()`` changes its locals (a list, a dict, a
set, a str of every kind) as fast as it can, for reads racing it (``--nonblocking``).

``locals_known.py READY gil``: a thread parks in time.sleep, then the main thread calls
libc's pause() through ctypes.PyDLL, which keeps the GIL: the process holds it forever.

Kept to Python 3.6 syntax (keyword-only parameters are the newest thing used).
"""

import ctypes
import gc
import json
import os
import sys
import threading
import time

#: The local variables of outer(), in the order make_values() gives their values.
NAMES = (
    "nothing yes no small big negative_big ratio tiny infinite "
    "ascii latin1 ucs2 ucs4 huge controls raw raw_long "
    "pair single nested longlist selfref mapping numbers frozen empty_set sparse foo"
).split()


class Foo:
    pass


def make_values():
    """The values outer() holds, made afresh (the test makes its own to compare)."""
    selfref = [1]
    selfref.append(selfref)
    sparse = set(range(300))  # its last 5 items, far into a table of deleted slots
    for x in range(295):
        sparse.discard(x)
    return (
        None,
        True,
        False,
        -42,
        int("1234567890" * 20),  # 200 digits
        -int("9" * 200),
        3.25,
        -1e-300,
        float("inf"),
        "hello",
        "caf\xe9 \xf1",  # PEP 393 kind 1, not ASCII
        "\u65e5\u672c\u8a9e \u03a9\u03bc\u03ad\u03b3\u03b1",  # kind 2
        "snake \U0001f40d \U0001d11e",  # kind 4
        "x" * (10 << 20),  # 10 MB, shown cut
        "a\x1b[2Jb\n",
        b"\x00\xffabc",
        bytes(range(256)),
        (1, "two", 3.0),
        (1,),
        [1, [2, [3, [4]]]],
        list(range(100)),
        selfref,
        {1: "one", (2, 3): [4], None: b"x", 2.5: True, frozenset([7]): "fs"},
        {1, 2, 3},
        frozenset(["a"]),
        set(),
        sparse,
        Foo(),
    )


def park():
    while True:
        time.sleep(1000)


def outer(a, b=2, *args, k=3, **kw):
    (
        nothing, yes, no, small, big, negative_big, ratio, tiny, infinite,
        ascii, latin1, ucs2, ucs4, huge, controls, raw, raw_long,
        pair, single, nested, longlist, selfref, mapping, numbers, frozen, empty_set, sparse,
        foo,
    ) = make_values()  # fmt: skip
    shared = ["cell"]

    def inner(x):
        seen = shared  # a free variable here, a cell variable in outer
        kept = b  # a parameter of outer that is a cell there
        READY["foo"] = id(foo)
        ready()
        park()
        return seen, kept

    inner("arg of inner")


def broken(sound, ob_type, list_items):
    bad_list = [1, 2, 3]
    bad_str = "".join(["not ", "interned"])
    fine = [4, 5]
    filler = b"\x00" * 64  # readable bytes that are no type object
    ctypes.c_void_p.from_address(id(bad_list) + list_items).value = 0x7FF0DEAD0000
    ctypes.c_void_p.from_address(id(bad_str) + ob_type).value = id(filler) + 40
    ready()
    park()
    return bad_list, bad_str, fine, sound


def churn():
    items, table, numbers, text = [], {}, set(), ""
    ready()
    n = 0
    while True:
        n += 1
        items.append(n)
        table[n] = str(n)
        numbers.add(n)
        text = ("\xe9", "\u03a9", "\U0001f40d")[n % 3] * (n % 50)  # noqa: F841 - read from outside
        if len(items) > 500:
            items, table, numbers = [], {}, set()


def gil_forever():
    t = threading.Thread(target=park, name="sleeper")
    t.daemon = True
    t.start()
    time.sleep(0.2)
    ready()
    ctypes.PyDLL(None).pause()  # PyDLL: the GIL is kept across the call


READY = {"pid": os.getpid()}


def ready():
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(READY, f)
    os.rename(tmp, sys.argv[1])


if __name__ == "__main__":
    mode = sys.argv[2]
    if mode == "known":
        outer("h\xe9llo", 2.5, 7, 8, k=b"kw", extra=None)
    elif mode == "corrupt":
        gc.disable()
        broken("ok", int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "churn":
        churn()
    else:
        gil_forever()

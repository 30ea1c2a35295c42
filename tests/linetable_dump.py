"""Dump real line tables and the interpreter's own line answers, for test_symbolize.

Runs under the interpreter being checked (CPython 2.7 and 3.6-3.14), so it keeps to
syntax all of them accept. It compiles stdlib sources plus generated tricky code, walks
every code object, and prints one JSON document on stdout::

    {"version": [3, 12], "addr2line": true, "codes": [
        {"name": ..., "table": hex, "first": co_firstlineno, "size": len(co_code),
         "neg": line for offset -1 (PyCode_Addr2Line),
         "truth": {"addr2line": RANGES, "starts": RANGES, "lines": RANGES, "positions": RANGES}}]}

where each RANGES is a list of [start, end, line-or-null] byte ranges, one per source of
truth: PyCode_Addr2Line queried at every offset, dis.findlinestarts (< 3.10), co_lines()
(3.10+) and co_positions() (3.11+). Offsets are bytes; step 1 on 2.7 (variable-length
instructions), 2 on 3.6+ (wordcode).
"""

# This file must stay valid Python 2.7, hence no f-strings or `yield from`.
# ruff: noqa: UP010, UP028, UP031

from __future__ import print_function

import binascii
import dis
import json
import os
import sys
import types

VERSION = sys.version_info[:2]
STEP = 1 if VERSION < (3, 0) else 2
SYNTHETIC_TABLES = 40

STDLIB_MODULES = [
    "argparse",
    "difflib",
    "inspect",
    "pydoc",
    "typing",
    "dataclasses",
    "tarfile",
    "subprocess",
    "collections",
    "asyncio/base_events",
    "email/_header_value_parser",
    "unittest/case",
    "_pydecimal",
    "decimal",
]

TRICKY = """
import os

def deco(f):
    return f

@deco
@deco
def decorated(a,
              b=(1 +
                 2)):
    return (a +
            b)

class K(object):
    @staticmethod
    def s(x):
        return [y * 2
                for y in x
                if y]

    def gen(self, n):
        for i in range(n):
            yield (i,
                   i * 2)

    def nested(self):
        def inner(z):
            def innermost():
                return z
            return innermost
        return inner

    lam = lambda self, q: (q
                           + 1)

def loops(n):
    total = 0
    while n > 0:
        for i in range(n):
            try:
                total += i
            except ValueError:
                continue
            finally:
                total -= 1
        n -= 1
    else:
        total = -total
    with open(os.devnull) as fh:
        fh.read()
    return {k: v for k, v in
            zip(range(3),
                range(3))}, set(x for x in range(3))

def backwards_call(a, b):
    return deco(
        a,
    )(
        b,
    )

def conditional(x):
    if (x and
            x > 1 and
            x < 10):
        return 1
    elif x:
        return 2
    return (3 if x
            else 4)
"""

PY3_TRICKY = """
import asyncio

async def coro(x):
    async with x as y:
        await y
    async for z in x:
        yield z

def fstrings(a, b):
    return (f"{a}"
            f"{b!r:>{a}}")

def kwonly(a, *, b=1, **kw):
    nonlocal_holder = [a]
    def inner():
        nonlocal nonlocal_holder
        nonlocal_holder = None
    return inner
"""

PY38_TRICKY = """
def walrus(data):
    if (n := len(data)) > 10:
        return [y for x in data if (y := x * 2)]
    return n
"""

PY310_TRICKY = """
def matcher(cmd):
    match cmd.split():
        case ["go", direction]:
            return direction
        case ["drop", *objs] if objs:
            return objs
        case {"x": x, **rest}:
            return x, rest
        case _:
            return None
"""

PY311_TRICKY = """
def groups():
    try:
        raise ExceptionGroup("g", [ValueError(1)])
    except* ValueError as e:
        caught = e
    except* TypeError:
        pass
    return (caught
            if caught else None)
"""


def generated():
    """Sources that force large and negative deltas in every format."""
    out = []
    # Line jumps beyond int8 and uint8, within one function.
    body = ["def jumps(a):", "    a += 1"]
    for gap in (127, 128, 200, 255, 256, 300, 1000, 70000):
        body.extend([""] * gap)
        body.append("    a += %d" % gap)
    body.append("    return a")
    out.append("\n".join(body))
    # Loops whose body is long: the jump back is a large negative delta.
    body = ["def long_loop(n):", "    t = 0", "    for i in range(n):"]
    for k in range(400):
        body.append("        t += i * %d" % k)
    body.append("    while t > 0:")
    body.extend([""] * 300)
    body.append("        t -= 1")
    body.append("    return t")
    out.append("\n".join(body))
    # One line with more bytecode than a single lnotab / 3.10 pair can span.
    out.append("def long_line(a):\n    return (" + " + ".join(["a"] * 400) + ")")
    # A display spanning many lines, each element one line apart.
    out.append(
        "def display():\n    return {\n"
        + "\n".join("        %d: (%d,\n             %d)," % (k, k, k) for k in range(300))
        + "\n    }"
    )
    # A call whose arguments run over many lines, then a backwards jump to the call line.
    out.append(
        "def long_call(f):\n    return f(\n"
        + "\n".join("        %d," % k for k in range(250))
        + "\n    )"
    )
    # A function starting far down the file (first line beyond 16 and 17 bits).
    out.append("\n" * 140000 + "def far(a):\n    b = a\n" + "\n" * 500 + "    return b")
    return out


def sources():
    stdlib = os.path.dirname(os.__file__)
    found = []
    for name in STDLIB_MODULES:
        for candidate in (name + ".py", os.path.join(name, "__init__.py")):
            path = os.path.join(stdlib, candidate)
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    found.append((path, fh.read()))
                break
    tricky = TRICKY
    if VERSION >= (3, 6):
        tricky += PY3_TRICKY
    if VERSION >= (3, 8):
        tricky += PY38_TRICKY
    if VERSION >= (3, 10):
        tricky += PY310_TRICKY
    if VERSION >= (3, 11):
        tricky += PY311_TRICKY
    found.append(("<tricky>", tricky))
    for k, src in enumerate(generated()):
        found.append(("<generated-%d>" % k, src))
    return found


# -- synthetic tables ---------------------------------------------------------------------
# Compilers never emit some legal forms (3.6/3.7 never emit a negative lnotab delta, 3.11+
# rarely uses every entry kind with large deltas), so the dump also swaps random but
# well-formed tables into a real code object and asks the interpreter about those.
# test_symbolize imports the 3.11+ encoder below for its own property test.


def varint(value):
    """3.11+ unsigned varint: 6-bit groups, low first, 0x40 = more follow."""
    out = bytearray()
    while value >= 64:
        out.append(64 | (value & 63))
        value >>= 6
    out.append(value)
    return out


def svarint(value):
    """3.11+ signed varint: magnitude shifted left one, low bit = negative."""
    return varint(((-value) << 1) | 1 if value < 0 else value << 1)


def encode_location(kind, units, delta, end_delta=0, col=0, end_col=0):
    """One 3.11+ location entry of ``kind`` (0-15) covering ``units`` (1-8) code units.

    ``delta`` must be 0 for kinds 0-9 and 15 and ``kind - 10`` for 10-12; 13 and 14 take
    any delta. Columns must be below 128 (they are payload bytes).
    """
    out = bytearray([0x80 | (kind << 3) | (units - 1)])
    if kind < 10:
        out.append(((col & 7) << 4) | (end_col & 15))
    elif kind < 13:
        out.extend((col, end_col))
    elif kind == 13:
        out.extend(svarint(delta))
    elif kind == 14:
        out.extend(svarint(delta))
        out.extend(varint(end_delta))
        out.extend(varint(col + 1))
        out.extend(varint(end_col + 1))
    return out


def random_delta(rnd, line, low, high):
    """A delta in [low, high], negated or 0 if need be to keep the line in 1..2**31-1.

    Real lines fit a C int; past it CPython's running line wraps around, which is not
    behaviour worth matching.
    """
    delta = rnd.randint(low, high)
    if low < 0 and not 1 <= line + delta <= 2147483647:
        delta = -delta
    if not 1 <= line + delta <= 2147483647:
        delta = 0
    return delta


def synthetic_table(rnd, size, first):
    """A random, well-formed table of this interpreter's format for ``size`` code bytes."""
    out = bytearray()
    line = first
    if VERSION < (3, 10):
        low = 0 if VERSION < (3, 0) else -127
        high = 255 if VERSION < (3, 0) else 127
        for _ in range(rnd.randint(1, 300)):
            addr = rnd.choice((0, 0, rnd.randint(0, 255), rnd.randint(0, 8)))
            delta = random_delta(rnd, line, low, high)
            line += delta
            out.extend((addr, delta & 255))
    elif VERSION == (3, 10):
        remaining = size
        while remaining > 0:
            span = min(remaining, rnd.choice((0, 2, 4, rnd.randint(0, 254))))
            remaining -= span
            if rnd.random() < 0.15:
                out.extend((span, 0x80))
            else:
                delta = random_delta(rnd, line, -127, 127)
                line += delta
                out.extend((span, delta & 255))
    else:
        remaining = size // 2
        while remaining > 0:
            units = min(remaining, rnd.randint(1, 8))
            remaining -= units
            kind = rnd.randint(0, 15)
            if kind == 13 or kind == 14:
                delta = random_delta(rnd, line, -300, rnd.choice((2, 300, 70000, 1 << 30)))
            elif 10 <= kind <= 12:
                delta = kind - 10
            else:
                delta = 0
            line += delta
            col = rnd.randint(0, 120)
            out.extend(encode_location(kind, units, delta, rnd.randint(0, 3), col, col + 3))
    return bytes(out)


def with_table(code, table):
    if VERSION >= (3, 10):
        return code.replace(co_linetable=table)
    if VERSION >= (3, 8):
        return code.replace(co_lnotab=table)
    args = [code.co_argcount]
    if VERSION >= (3, 0):
        args.append(code.co_kwonlyargcount)
    args.extend(
        [
            code.co_nlocals,
            code.co_stacksize,
            code.co_flags,
            code.co_code,
            code.co_consts,
            code.co_names,
            code.co_varnames,
            code.co_filename,
            code.co_name,
            code.co_firstlineno,
            table,
            code.co_freevars,
            code.co_cellvars,
        ]
    )
    return types.CodeType(*args)


def synthetic(base, count):
    import random

    rnd = random.Random(626657)
    for k in range(count):
        table = synthetic_table(rnd, len(base.co_code), base.co_firstlineno)
        yield k, with_table(base, table)


def walk(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            for sub in walk(const):
                yield sub


def addr2line_function():
    try:
        import ctypes

        fn = ctypes.pythonapi.PyCode_Addr2Line
    except (ImportError, AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.py_object, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def ranges(pairs):
    """Merge (offset, line) samples taken every STEP bytes into [start, end, line] ranges."""
    out = []
    for offset, line in pairs:
        if out and out[-1][2] == line and out[-1][1] == offset:
            out[-1][1] = offset + STEP
        else:
            out.append([offset, offset + STEP, line])
    return out


def line_of_starts(starts, size):
    """Per-offset lines from sorted (offset, line) line starts."""
    out = []
    for k, (offset, line) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else size
        if offset < end:
            out.append([offset, min(end, size), line])
    return out


def describe(code, addr2line, name=None):
    if VERSION >= (3, 10):
        table = code.co_linetable
    else:
        table = code.co_lnotab
    size = len(code.co_code)
    truth = {}
    neg = None
    if addr2line is not None:
        truth["addr2line"] = ranges(
            (off, none_if_negative(addr2line(code, off))) for off in range(0, size, STEP)
        )
        neg = addr2line(code, -1)
    if VERSION >= (3, 10):
        truth["lines"] = [[s, e, line] for s, e, line in code.co_lines() if e > s]
    else:
        truth["starts"] = line_of_starts(list(dis.findlinestarts(code)), size)
    if VERSION >= (3, 11):
        truth["positions"] = ranges((2 * k, pos[0]) for k, pos in enumerate(code.co_positions()))
    return {
        "name": name or code.co_name,
        "table": binascii.hexlify(table).decode("ascii"),
        "first": code.co_firstlineno,
        "size": size,
        "neg": neg,
        "truth": truth,
    }


def none_if_negative(line):
    return None if line < 0 else line


def main():
    addr2line = addr2line_function()
    codes = []
    biggest = None
    for filename, src in sources():
        top = compile(src, filename, "exec", 0, True)
        for code in walk(top):
            codes.append(describe(code, addr2line))
            if code.co_name != "<module>" and (
                biggest is None or len(code.co_code) > len(biggest.co_code)
            ):
                biggest = code
    for k, code in synthetic(biggest, SYNTHETIC_TABLES):
        codes.append(describe(code, addr2line, "<synthetic-%d>" % k))
    # dumps, not dump: only the one-shot encoder uses the C accelerator.
    sys.stdout.write(
        json.dumps(
            {"version": list(VERSION), "addr2line": addr2line is not None, "codes": codes},
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()

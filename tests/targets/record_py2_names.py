# -*- coding: utf-8 -*-
"""Part of tests/targets/record_known.py on CPython 2.7, where record_módulo_ñ.py cannot
be: 2.7 has no non-ASCII identifiers. Its names are byte strings, though, and may hold
any bytes: these two functions are given names as 2.7 code can have them, ``函数_cjk`` in
UTF-8 and ``fé_latin`` in Latin-1 (b"f\\xe9_latin", not UTF-8: recorded as the text
``f\\xe9_latin``, never dropped). The sleeper thread parks in the first on the
MARK:cjk-sleep line for the target's whole life.
"""

# This file must stay valid Python 2.7 (it is only run there).
# ruff: noqa: UP009

import time
import types


def latin(lifetime, started):
    return cjk(lifetime, started)  # MARK:latin-call


def cjk(lifetime, started):
    started.set()
    time.sleep(lifetime)  # MARK:cjk-sleep


def renamed(function, name):
    c = function.__code__
    function.__code__ = types.CodeType(
        c.co_argcount, c.co_nlocals, c.co_stacksize, c.co_flags, c.co_code, c.co_consts,
        c.co_names, c.co_varnames, c.co_filename, name, c.co_firstlineno, c.co_lnotab,
        c.co_freevars, c.co_cellvars,
    )  # fmt: skip


renamed(latin, b"f\xe9_latin")
renamed(cjk, b"\xe5\x87\xbd\xe6\x95\xb0_cjk")
ENTRY = latin

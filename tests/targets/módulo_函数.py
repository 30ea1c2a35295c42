# Functions with non-ASCII names, in a file with a non-ASCII name: the walker must decode
# PEP 393 strings of every kind (latin-1 'é', UCS-2 CJK, UCS-4 U+20000).
import time


def fé_latin(ready):
    return 函数_cjk(ready)


def 函数_cjk(ready):
    return 𠀀_ucs4(ready)


def 𠀀_ucs4(ready):
    ready.set()
    time.sleep(1000)  # MARK:ucs4-sleep

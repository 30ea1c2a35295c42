"""Byte-level mutations of valid traces, shared by the reader's and the pipeline's fuzz
tests (hypothesis draws every choice, so failures shrink to a small edit)."""

from __future__ import annotations

from hypothesis import strategies as st

#: Bytes that mean something to msgpack (never-used 0xC1, map32, bin32, ext, fixint...).
TRICKY = [0xC1, 0xDB, 0xC6, 0xDD, 0xDF, 0xFF, 0x00, 0x7F, 0xCF, 0xD3]


def mutate(data, buf: bytearray, *, start: int = 0, rounds: int = 6, span: int = 12) -> None:
    """Apply 1..``rounds`` random edits to ``buf`` at offsets >= ``start``: bit flips,
    inserted or deleted runs of up to ``span`` bytes, spliced copies of the file's own
    bytes (records in the wrong place), and msgpack-significant byte values."""
    for _ in range(data.draw(st.integers(1, rounds))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "set", "splice"]))
        i = data.draw(st.integers(start, len(buf) - 1))
        if op == "flip":
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=span))
        elif op == "delete":
            del buf[i : i + data.draw(st.integers(1, span))]
        elif op == "splice":
            j = data.draw(st.integers(start, len(buf) - 1))
            buf[i:i] = buf[j : j + data.draw(st.integers(1, 40))]
        else:
            buf[i] = data.draw(st.sampled_from(TRICKY))

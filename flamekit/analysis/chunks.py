"""One chunked writer: the text pieces a format produces, as UTF-8 byte chunks.

Formats yield many small strings (a line per stack, an element per frame) and the writer
below them (:func:`flamekit.output.write_output`) wants bytes. Joining every piece first
would hold the whole document twice (text and bytes); encoding each piece alone would
make a million tiny writes. Chunks of about :data:`CHUNK` characters keep both bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: Characters per yielded chunk (a chunk ends at the first piece that reaches it).
CHUNK = 1 << 16


def chunked(parts: Iterable[str], size: int = CHUNK) -> Iterator[bytes]:
    """Join strings into UTF-8 chunks of about ``size`` characters, in order.

    No chunk is empty. Encoding is strict: a format escapes what UTF-8 cannot carry (lone surrogates)
    before it gets here, and a name it forgot fails loudly instead of turning into "?".
    """
    buf: list[str] = []
    n = 0
    for p in parts:
        buf.append(p)
        n += len(p)
        if n >= size:
            yield "".join(buf).encode("utf-8")
            buf.clear()
            n = 0
    if n:
        yield "".join(buf).encode("utf-8")

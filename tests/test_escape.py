"""One escaper for names in every text output, and one chunked writer for every stream.

A name from a trace may hold anything the target put there; in ``top``, ``info`` and the
``diff`` table it shows the same visible escape, and nothing in it reaches the terminal
as a control character.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.analysis.chunks import chunked
from flamekit.analysis.escape import UNPRINTABLE, escape_char, escaper, printable
from flamekit.codeformat import LINETABLE_NONE
from flamekit.convert.collapsed import escape_frame, unescape_frame
from flamekit.convert.flamegraph_svg import visible
from flamekit.trace import TraceWriter
from flamekit.trace import records as R

RAW = re.compile(f"[{UNPRINTABLE}]")
#: ESC sequences (a window title, a colour), every line break, DEL, C1 controls.
EVIL = "x\x1b]0;pwned\x07\x1b[31mred\n\r\t\x7f\x85\x9b\u2028\u2029y"


@given(st.text())
def test_printable_leaves_nothing_raw_and_only_escapes(text: str):
    out = printable(text)
    assert not RAW.search(out)
    out.encode("utf-8")  # lone surrogates are gone too
    # every other character is kept as it is, in order
    assert re.sub(r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}", "", out) == re.sub(
        r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}", "", RAW.sub("", text)
    )


def test_escapes_are_spelled_one_way():
    assert printable("a\x1b[31m\nb\x9b\u2028\ud800\x7f") == (
        "a\\x1b[31m\\x0ab\\x9b\\u2028\\ud800\\x7f"
    )
    assert escape_char("\x00") == "\\x00" and escape_char("\udfff") == "\\udfff"
    # the formats with a grammar of their own spell the shared characters the same way
    for c in "\x00\x1b\n\x85\u2028\ud800":
        assert escape_frame(c) == visible(c) == printable(c) == escape_char(c)
    assert escape_frame("a;b\\c") == "a\\x3bb\\\\c"
    assert visible("\ufffe") == "\\ufffe" and printable("\ufffe") == "\ufffe"
    assert escaper(also="]-")("a]-b") == "a\\x5d\\x2db"


@given(st.text())
def test_folded_escaping_still_round_trips(text: str):
    assert unescape_frame(escape_frame(text)) == text


@given(
    st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)), st.integers(1, 64)
)
def test_chunked_is_the_utf8_of_the_whole_in_bounded_chunks(parts: list[str], size: int):
    chunks = list(chunked(parts, size))
    assert b"".join(chunks) == "".join(parts).encode("utf-8")
    assert all(chunks)
    longest = max((len(p) for p in parts), default=0)
    # a chunk ends at the first piece that reaches the size: never more than that piece over
    assert all(len(c.decode("utf-8")) < size + longest for c in chunks)


def hostile_trace(path: Path) -> Path:
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("t", 0, 0, 100.0, 7, ("python", "app.py")))
        w.write(R.Code(1, 7, 0x10, "f", "Q." + EVIL, "/p/" + EVIL + ".py", 3, b"", LINETABLE_NONE))
        w.write(R.Thread(0, 7, 101, 1, "main" + EVIL, 0))
        sid = w.stack_id(((1, 4),))
        for i in range(20):
            w.sample(i * 10_000_000, 0, sid)
        w.close("duration")
    return path


@pytest.mark.parametrize(
    "argv",
    [["info", "{t}"], ["top", "{t}", "--threads"], ["diff", "{t}", "{t}", "--threads"]],
    ids=["info", "top", "diff"],
)
def test_every_text_output_escapes_names_the_same_way(tmp_path: Path, argv: list[str]):
    trace = hostile_trace(tmp_path / "h.fkt")
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", *(a.replace("{t}", str(trace)) for a in argv)],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("utf-8")
    assert not RAW.search(out.replace("\n", "")), out
    assert printable("main" + EVIL) in out
    if argv[0] != "info":
        assert printable(f"Q.{EVIL} (/p/{EVIL}.py)") in out


def test_a_recording_warning_escapes_the_command_line_it_names() -> None:
    """record --subprocesses warns about a process it cannot follow by its command line,
    which that process chose: no ESC sequence of it reaches the terminal."""
    import io

    from flamekit.commands.progress import Progress

    out = io.StringIO()
    Progress(quiet=True, stream=out).note("flamekit: warning: 42 (evil\x1b]0;pwned\x07\n):")
    assert out.getvalue() == "flamekit: warning: 42 (evil\\x1b]0;pwned\\x07\\x0a):\n"

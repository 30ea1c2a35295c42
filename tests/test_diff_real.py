"""`flamekit diff` on real recordings: the hot function moves by construction.

tests/targets/diff_modes.py spends about 70% of its wall time in ``parse`` in mode A and
30% in mode B (render and checksum take the rest, 15% -> 35% each), whatever the machine
or Python version. Recorded by ``flamekit record`` and diffed, ``parse`` must come first,
shrinking by 40 points give or take 5, render and checksum growing by about 20; two
recordings of the same mode must diff to about zero; and recordings on two different
Python versions must match function by function (nothing added or removed).

These tests need the recorder: they fail, never skip, while ``flamekit record`` is
missing or broken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pythons import pyenv_root

TARGET = Path(__file__).resolve().parent / "targets" / "diff_modes.py"
#: Seconds each mode runs: enough samples at 100 Hz for a share within a few points.
SECONDS = "6"
#: Truth by construction, in % of samples: (parse, render, checksum)
TRUTH = {"A": (70.0, 15.0, 15.0), "B": (30.0, 35.0, 35.0)}
TOLERANCE = 5.0  #: percentage points
OURS = ("parse", "render", "checksum", "run", "main")


def flamekit(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, timeout=timeout
    )


def check(r: subprocess.CompletedProcess, what: str) -> str:
    stderr = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, f"{what} failed (exit {r.returncode}):\n{stderr}"
    assert "Traceback" not in stderr, stderr
    return r.stdout.decode("utf-8")


def _rate_options() -> list[str]:
    """Ask for 500 Hz when the recorder has a --rate option: more samples, tighter shares."""
    r = flamekit("record", "--help", timeout=60)
    return ["--rate", "500"] if r.returncode == 0 and b"--rate" in r.stdout else []


def record(out: Path, mode: str, python: str = sys.executable) -> Path:
    r = flamekit(
        "record", *_rate_options(), "-o", str(out), "--", python, str(TARGET), mode, SECONDS
    )
    check(r, f"flamekit record of diff_modes.py {mode} on {python}")
    assert out.exists(), f"flamekit record wrote no {out}"
    return out


def diff_rows(a: Path, b: Path, *opts: str) -> dict[str, dict]:
    doc = json.loads(check(flamekit("diff", str(a), str(b), "--to", "json", *opts), "diff"))
    return doc


def ours(doc: dict) -> dict[str, dict]:
    """Rows of the target's own functions (in diff_modes.py), by function name."""
    out = {}
    for row in doc["rows"]:
        if row["kind"] == "python" and row["file"].endswith("diff_modes.py"):
            out[row["name"]] = row
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("diff_real")
    return {
        "A": record(tmp / "a.fkt", "A"),
        "B": record(tmp / "b.fkt", "B"),
        "A2": record(tmp / "a2.fkt", "A"),
    }


def test_parse_ranks_first_with_the_right_sign_and_size(recordings: dict[str, Path]):
    doc = diff_rows(recordings["A"], recordings["B"])
    first = doc["rows"][0]
    # the script's own file, relative to its directory (the import root sys.path[0])
    assert (first["name"], first["file"]) == ("parse", TARGET.name), [
        (r["label"], r["self_diff_pp"]) for r in doc["rows"][:5]
    ]
    truth = TRUTH["B"][0] - TRUTH["A"][0]
    assert first["self_diff_pp"] < 0
    assert abs(first["self_diff_pp"] - truth) <= TOLERANCE, first
    assert abs(first["total_diff_pp"] - truth) <= TOLERANCE, first
    rows = ours(doc)
    for i, name in enumerate(("parse", "render", "checksum")):
        row = rows[name]
        assert row["status"] == "both"
        assert abs(row["self_pct_a"] - TRUTH["A"][i]) <= TOLERANCE, row
        assert abs(row["self_pct_b"] - TRUTH["B"][i]) <= TOLERANCE, row
        want = TRUTH["B"][i] - TRUTH["A"][i]
        assert abs(row["self_diff_pp"] - want) <= TOLERANCE, row
    # the callers hold (nearly) every sample on both sides: no change
    assert abs(rows["run"]["total_diff_pp"]) <= TOLERANCE


def test_the_table_says_the_same(recordings: dict[str, Path]):
    out = check(flamekit("diff", str(recordings["A"]), str(recordings["B"])), "diff").splitlines()
    assert out[0].startswith(f"a: {recordings['A']}") and "samples" in out[0]
    assert out[1].startswith(f"b: {recordings['B']}")
    first = out[4].split()
    assert out[4].endswith(f"parse ({TARGET.name})"), out[4]
    assert float(first[2]) < -30  # ΔSelf, in points
    whole = flamekit("diff", str(recordings["A"]), str(recordings["B"]), "--full-filenames")
    assert check(whole, "diff").splitlines()[4].endswith(f"parse ({TARGET})")


def test_two_recordings_of_one_mode_diff_to_about_zero(recordings: dict[str, Path]):
    rows = ours(diff_rows(recordings["A"], recordings["A2"]))
    for name in ("parse", "render", "checksum"):
        assert rows[name]["status"] == "both"
        assert abs(rows[name]["self_diff_pp"]) <= TOLERANCE, rows[name]


def test_a_recording_against_itself_is_exactly_zero(recordings: dict[str, Path]):
    doc = diff_rows(recordings["B"], recordings["B"], "--lines")
    assert doc["rows"]
    assert all(r["self_diff_pp"] == 0 == r["total_diff_pp"] for r in doc["rows"])
    assert all(r["status"] == "both" for r in doc["rows"])


def test_difffolded_of_real_recordings(recordings: dict[str, Path]):
    text = check(
        flamekit(
            "diff", str(recordings["A"]), str(recordings["B"]), "--to", "difffolded", "-o", "-"
        ),
        "diff --to difffolded",
    )
    parse_a = parse_b = total_b = 0
    for line in text.splitlines():
        stack, ca, cb = line.rsplit(" ", 2)
        total_b += int(cb)
        if stack.split(";")[-1].startswith("parse ("):
            parse_a += int(ca)
            parse_b += int(cb)
    assert abs(100 * parse_a / total_b - 70) <= TOLERANCE  # a is scaled to b's total
    assert abs(100 * parse_b / total_b - 30) <= TOLERANCE


def _interpreter(minor: int) -> str:
    found = sorted((pyenv_root() / "versions").glob(f"3.{minor}.*/bin/python3.{minor}"))
    assert found, f"CPython 3.{minor} is missing: the machine image should have it"
    return str(found[-1])


def test_recordings_on_two_python_versions_match_function_by_function(tmp_path: Path):
    """A on 3.10 (no qualnames, old line tables) against B on 3.12: same functions."""
    a = record(tmp_path / "a310.fkt", "A", _interpreter(10))
    b = record(tmp_path / "b312.fkt", "B", _interpreter(12))
    doc = diff_rows(a, b)
    rows = ours(doc)
    assert set(OURS) <= set(rows), sorted(rows)
    for name in OURS:
        assert rows[name]["status"] == "both", rows[name]
    assert doc["rows"][0]["name"] == "parse"
    assert abs(doc["rows"][0]["self_diff_pp"] + 40) <= TOLERANCE
    same = ours(diff_rows(b, record(tmp_path / "b311.fkt", "B", _interpreter(11))))
    for name in OURS:
        assert same[name]["status"] == "both", same[name]
    assert abs(same["parse"]["self_diff_pp"]) <= TOLERANCE

"""``flamekit dump --locals`` end to end, on every interpreter of the recorder matrix
(and 3.6, 3.7): tests/targets/locals_known.py parks with known arguments and locals.

The expected reprs are computed here, with the dump's own bounds, from the same values
made afresh in this process (locals_known.make_values()); the formatter itself is
tested on its own in test_value_repr.py. A corrupted object must read as
``<unreadable>`` without harm to the dump or the target, and a process holding the GIL
forever in a C call must still be dumped.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from test_record_e2e import BY_ID, INTERPRETERS, Started, flamekit, proc_state, text

from flamekit.analysis.escape import printable
from flamekit.analysis.value_repr import UNREADABLE, Bounds, short_repr
from flamekit.record.tables.objects import TABLES

TARGET = Path(__file__).resolve().parent / "targets" / "locals_known.py"
IDS = [i.id for i in INTERPRETERS] + ["3.6", "3.7"]

_spec = importlib.util.spec_from_file_location("locals_known", TARGET)
assert _spec is not None and _spec.loader is not None
known = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(known)


def started(iid: str, tmp: Path, *mode: str) -> Started:
    ready = tmp / "ready.json"
    return Started([BY_ID[iid].path, str(TARGET), str(ready), *mode], ready)


def dump_json(pid: int, *opts: str) -> dict:
    r = flamekit("dump", "-p", str(pid), "--locals", "--json", *opts)
    assert r.returncode == 0 and not r.stderr, text(r.stderr)
    return json.loads(r.stdout.decode("utf-8"))


def frames_named(doc: dict, name: str) -> list[dict]:
    """Frames of any thread whose function is ``name`` (qualified on 3.11+)."""
    return [
        f
        for t in doc["threads"]
        for f in t["frames"]
        if f["function"] == name or f["function"].endswith("." + name)
    ]


def by_name(frame: dict) -> dict[str, tuple[str, bool]]:
    names = [v["name"] for v in frame["locals"]]
    assert len(names) == len(set(names)), names
    return {v["name"]: (v["repr"], v["arg"]) for v in frame["locals"]}


def expected_outer(foo: int) -> dict[str, tuple[str, bool]]:
    b = Bounds()
    want = {n: (short_repr(v, b), False) for n, v in zip(known.NAMES, known.make_values())}
    want["foo"] = (f"<Foo object at {foo:#x}>", False)
    args = {"a": "h\xe9llo", "b": 2.5, "args": (7, 8), "k": b"kw", "kw": {"extra": None}}
    want.update({n: (short_repr(v, b), True) for n, v in args.items()})
    want["shared"] = (short_repr(["cell"], b), False)  # a cell variable
    want["inner"] = ("<function object at 0x", False)  # prefix: its address is unknown
    return want


@pytest.mark.parametrize("iid", IDS)
def test_known_locals(tmp_path: Path, iid: str) -> None:
    with started(iid, tmp_path, "known") as target:
        doc = dump_json(target.pid)
        (outer,) = frames_named(doc, "outer")
        got = by_name(outer)
        want = expected_outer(target.info["foo"])
        assert set(got) == set(want), set(got) ^ set(want)
        fn_repr, _ = got.pop("inner")
        assert fn_repr.startswith(want.pop("inner")[0]), fn_repr
        assert got == want
        # The cut ones show the cut (the bounds are the dump's, not the whole value).
        assert got["huge"][0] == "'" + "x" * Bounds().chars + "'…"
        assert got["selfref"][0] == "[1, [1, […]]]"
        # Parameters come first, but for those that are cells: 3.10 and older keep a
        # cell after the locals, even a parameter's (its local slot is cleared).
        flags = [v["arg"] for v in outer["locals"] if v["name"] not in ("b", "foo", "shared")]
        assert flags == sorted(flags, reverse=True), flags

        (inner,) = frames_named(doc, "inner")
        b = Bounds()
        assert by_name(inner) == {
            "x": (short_repr("arg of inner", b), True),
            "seen": (short_repr(["cell"], b), False),
            "shared": (short_repr(["cell"], b), False),  # a free variable
            "foo": (want["foo"][0], False),  # another (a cell in outer)
            "kept": (short_repr(2.5, b), False),
            "b": (short_repr(2.5, b), False),  # free here, a parameter and cell in outer
        }

        # The people's form: the same reprs, escaped, under the frame, args marked.
        r = flamekit("dump", "-p", str(target.pid), "--locals")
        assert r.returncode == 0, text(r.stderr)
        out = r.stdout.decode("utf-8")
        for name, (rep, arg) in want.items():
            line = f"        {'arg ' if arg else ''}{name} = {printable(rep)}"
            assert line in out.splitlines(), line
        assert "\x1b" not in out

        # Read live: the target is parked, so the same values (and never a crash).
        live = dump_json(target.pid, "--nonblocking")
        (outer_live,) = frames_named(live, "outer")
        live_got = by_name(outer_live)
        live_got.pop("inner")
        assert live_got == want
        assert proc_state(target.pid) == "S"


@pytest.mark.parametrize("iid", IDS)
def test_corrupt_objects_unreadable(tmp_path: Path, iid: str) -> None:
    table = TABLES[".".join(map(str, BY_ID[iid].version))]
    offsets = (str(table["ob_type"]), str(table["list_items"]))
    with started(iid, tmp_path, "corrupt", *offsets) as target:
        doc = dump_json(target.pid)
        (frame,) = frames_named(doc, "broken")
        got = by_name(frame)
        assert got["bad_list"] == (UNREADABLE, False)
        assert got["bad_str"] == (UNREADABLE, False)
        assert got["fine"] == ("[4, 5]", False)
        assert got["sound"] == ("'ok'", True)
        r = flamekit("dump", "-p", str(target.pid), "--locals")
        assert r.returncode == 0 and not r.stderr, text(r.stderr)
        assert f"        bad_list = {UNREADABLE}" in r.stdout.decode().splitlines()
        # Left running: sleeping in its park, not stopped (T) by the dump.
        status = Path(f"/proc/{target.pid}/status").read_text()
        assert "\nState:\tS" in status, status


@pytest.mark.parametrize("iid", [i.id for i in INTERPRETERS])
def test_nonblocking_races_never_crash(tmp_path: Path, iid: str) -> None:
    """Reads racing a target that changes its locals all the time: every dump answers
    (a torn value reads as <unreadable> or as one of the values it had), none fails."""
    with started(iid, tmp_path, "churn") as target:
        seen = 0
        for _ in range(3):
            doc = dump_json(target.pid, "--nonblocking")
            for frame in frames_named(doc, "churn"):
                if frame["locals"] is not None:
                    seen += 1
                    assert {v["name"] for v in frame["locals"]} <= {
                        "items", "table", "numbers", "text", "n"
                    }  # fmt: skip
        assert seen  # most reads find the frame whole
        assert proc_state(target.pid) in ("R", "S")


@pytest.mark.parametrize("iid", [i.id for i in INTERPRETERS])
def test_gil_held_forever(tmp_path: Path, iid: str) -> None:
    """pause() through ctypes.PyDLL keeps the GIL: dump reads memory, needs no GIL."""
    with started(iid, tmp_path, "gil") as target:
        deadline = time.monotonic() + 10
        while True:  # until the main thread is in pause() (ready is written just before)
            doc = dump_json(target.pid)
            main = next(t for t in doc["threads"] if t["native_tid"] == target.pid)
            if main["frames"][0]["function"] == "gil_forever" and main["holds_gil"]:
                break
            assert time.monotonic() < deadline, main
            time.sleep(0.05)
        assert main["idle"]  # the kernel has it sleeping in pause()
        sleeper = next(t for t in doc["threads"] if t["name"] == "sleeper")
        assert sleeper["idle"] and not sleeper["holds_gil"]
        kernel = {
            tid: proc_state_of(target.pid, tid) for tid in (target.pid, sleeper["native_tid"])
        }
        assert kernel == {target.pid: "S", sleeper["native_tid"]: "S"}, kernel
        assert proc_state(target.pid) == "S"


def proc_state_of(pid: int, tid: int) -> str:
    data = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes()
    return data[data.rfind(b")") + 2 :][:1].decode()

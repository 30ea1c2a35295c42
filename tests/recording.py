"""Record a launched target with the flamekit CLI and load the trace: for tests that
check what a recording holds."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from flamekit.trace import Trace, load


def record_launched(target_argv: list[str], *options: str) -> Trace:
    """``flamekit record -q -r 1000 OPTIONS -- TARGET_ARGV`` to its end; its trace."""
    return record_launched_reporting(target_argv, *options)[0]


def record_launched_reporting(target_argv: list[str], *options: str) -> tuple[Trace, str]:
    """The same, with what the recorder printed on stderr (its summary line)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.fkt"
        r = subprocess.run(
            [sys.executable, "-m", "flamekit", "record", "-q", "-r", "1000", *options,
             "-o", str(out), "--", *target_argv],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return load(out), r.stderr

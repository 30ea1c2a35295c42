"""Python side of the real-reader tests: find the readers, run them, skip (or fail in CI).

The readers are installed by ``tests/readers/install_formats.sh`` (Debian chromium and
golang-go; the npm packages pinned in ``tests/readers/js``). A reader that is missing
skips its tests on a developer's machine, and fails them under ``CI=true``, where a
silent skip would hide a broken install step.

Browser checks share one headless chromium for the whole session (:func:`browser`),
driven by ``js/browser.mjs`` with playwright-core: starting chromium per test would cost
seconds each on CI's two cores.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
NODE_MODULES = JS / "node_modules"
SPEEDSCOPE_APP = NODE_MODULES / "speedscope" / "dist" / "release" / "index.html"
SPEEDSCOPE_SCHEMA = NODE_MODULES / "speedscope" / "dist" / "release" / "file-format-schema.json"
CHROMIUM = os.environ.get("FLAMEKIT_CHROMIUM", "/usr/bin/chromium")


def shared_file(relative: str) -> Path | None:
    """A file of the project's shared/ folder (``$FLAMEKIT_SHARED``, or beside the checkout)."""
    env = os.environ.get("FLAMEKIT_SHARED")
    bases = [Path(env)] if env else []
    bases += [p / "shared" for p in HERE.parents] + [Path("/work/shared")]
    for base in bases:
        if (base / relative).is_file():
            return base / relative
    return None


def speedscope_schema() -> dict[str, Any]:
    """speedscope's file-format JSON schema: the npm package's copy, else shared/data's."""
    path = SPEEDSCOPE_SCHEMA if SPEEDSCOPE_SCHEMA.is_file() else None
    path = path or shared_file("data/speedscope-file-format-schema.json")
    if path is None:
        missing("speedscope's file-format-schema.json (npm package speedscope)")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[union-attr]


def missing(what: str) -> None:
    """Skip the calling test because a reader is missing; fail instead under CI."""
    msg = f"{what} not installed (run tests/readers/install_formats.sh)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def node() -> str:
    """The node binary, or skip."""
    path = shutil.which("node")
    if path is None:
        missing("node")
    return path  # type: ignore[return-value]


def npm_package(name: str) -> Path:
    """The installed directory of an npm package of the harness, or skip."""
    path = NODE_MODULES / name
    if not (path / "package.json").is_file():
        missing(f"npm package {name}")
    return path


def run_node(script: str, *args: str, timeout: float = 120) -> Any:
    """Run ``js/<script>`` with node and return its stdout parsed as JSON."""
    r = subprocess.run(
        [node(), str(JS / script), *args],
        capture_output=True,
        timeout=timeout,
        cwd=JS,
    )
    if r.returncode:
        raise AssertionError(
            f"{script} failed ({r.returncode}): {r.stderr.decode('utf-8', 'replace')}"
        )
    return json.loads(r.stdout)


def go_pprof() -> list[str]:
    """The command prefix for ``go tool pprof``, or skip."""
    go = shutil.which("go")
    if go is None:
        missing("go (Debian golang-go)")
    return [go, "tool", "pprof"]  # type: ignore[list-item]


class BrowserError(AssertionError):
    """A browser command failed (the reply's error text is the message)."""


class Browser:
    """One chromium behind ``js/browser.mjs``; :meth:`call` sends one command."""

    def __init__(self) -> None:
        npm_package("playwright-core")
        if not os.access(CHROMIUM, os.X_OK):
            missing("chromium (Debian chromium)")
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", FLAMEKIT_CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen(
            [node(), str(JS / "browser.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=JS,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.lock = threading.Lock()
        first = self._read()
        if first.get("value") != "ready":
            raise BrowserError(f"browser did not start: {first}")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError(f"browser exited: {''.join(self._stderr)[-2000:]}")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> Any:
        """Run one command on the page; its value, or BrowserError."""
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self.proc.stdin.flush()
            reply = self._read()
        if not reply.get("ok"):
            raise BrowserError(f"{op}: {reply.get('error')}")
        return reply.get("value")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


_browser: Browser | None = None


def browser() -> Browser:
    """The session's one browser, started on first use and closed at exit."""
    global _browser
    if _browser is None or _browser.proc.poll() is not None:
        _browser = Browser()
        atexit.register(_browser.close)
    return _browser


def open_in_speedscope(path: Path, timeout_ms: int = 30000) -> dict[str, Any]:
    """Import ``path`` into the real speedscope app; what it showed and logged.

    Returns ``title`` (speedscope sets ``NAME - speedscope`` once a profile is imported),
    ``log`` (console errors, page errors, dialogs: "Unrecognized format!" is an alert) and
    ``body`` (the page's visible text).
    """
    npm_package("speedscope")
    b = browser()
    b.call("open", url=SPEEDSCOPE_APP.as_uri())
    b.call("upload", selector="input[type=file]", file=str(path))
    title = None
    try:
        title = b.call("waitTitle", notEqual="speedscope", timeout=timeout_ms)
    except BrowserError:
        pass  # the log says why
    b.call("wait", ms=300)  # let the first frame render (a crash shows up after import)
    return {
        "title": title,
        "log": b.call("log"),
        "body": b.call("eval", expr="document.body.innerText"),
    }


def speedscope_export(path: Path) -> dict[str, Any]:
    """speedscope's own re-export (its Export button) of the profile just imported."""
    b = browser()
    b.call("download", selector="text=Export", path=str(path))
    return json.loads(path.read_text(encoding="utf-8"))

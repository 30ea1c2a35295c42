#!/usr/bin/env bash
# Real readers for flamekit's speedscope, cpuprofile, svg and pprof outputs.
#
#   Debian: chromium (speedscope's app and the SVG flame graph, headless),
#           golang-go (`go tool pprof`), fonts-dejavu-core (text in screenshots).
#   npm, pinned by tests/readers/js/package-lock.json into tests/readers/js/node_modules:
#           speedscope (its dist/release app and schema), playwright-core (drives Debian's
#           chromium; never downloads a browser), @paulirish/trace_engine (DevTools'
#           Performance-panel engine).
#
# Idempotent and quick when everything is there (no apt-get update, no npm call). Never
# fails the run: a machine without apt, root or npm just skips, and the reader tests then
# skip (or fail under CI=true, see tests/readers/harness.py).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JS="$HERE/js"
say() { echo "tests/readers/install_formats.sh: $*" >&2; }

# -- Debian packages ----------------------------------------------------------------------
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO="sudo -n"
    else
      say "not root and no sudo: not installing ${need[*]}"
      SUDO=skip
    fi
  fi
  if [ "$SUDO" != skip ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    install() { $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
    say "installing ${need[*]} (Debian)"
    # The package lists may be missing or stale on a fresh machine: update and retry; a
    # mirror caught mid-sync fails an update now and then, so up to three times.
    if ! install 2>/dev/null; then
      ok=""
      for try in 1 2 3; do
        if $SUDO apt-get update -q >/dev/null && install; then ok=1; break; fi
        sleep $((try * 5))
      done
      [ -n "$ok" ] || say "could not install ${need[*]}"
    fi
  elif [ "$SUDO" != skip ]; then
    say "no apt-get: not installing ${need[*]}"
  fi
fi

# -- npm packages ---------------------------------------------------------------------------
# Reinstall only when the lock file changed since the last install (npm writes its own copy
# of the lock to node_modules/.package-lock.json).
if ! command -v npm >/dev/null 2>&1; then
  say "no npm: not installing the JavaScript readers"
  exit 0
fi
stamp="$JS/node_modules/.flamekit-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$JS/package-lock.json"; then
  exit 0
fi
say "installing the JavaScript readers (npm ci in tests/readers/js)"
for try in 1 2 3; do  # the registry drops a connection now and then
  if (cd "$JS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
        --loglevel=error >/dev/null); then
    cp "$JS/package-lock.json" "$stamp"
    exit 0
  fi
  sleep $((try * 5))
done
say "npm ci failed: the JavaScript reader tests will skip (or fail under CI)"
exit 0

#!/usr/bin/env bash
# Real readers for flamekit's collapsed output: flamegraph.pl (Brendan Gregg's FlameGraph).
#
# No Debian package ships FlameGraph itself, but Debian's libdevel-nytprof-perl bundles
# flamegraph.pl (as /usr/share/perl5/Devel/NYTProf/flamegraph.pl) for nytprofhtml, and
# needs only perl. So: install that package with apt. Idempotent: exits at once when the
# script is already there. Never fails the run: a machine without apt or root just
# skips, and the reader tests then skip (or fail under CI=true, see the tests).
set -uo pipefail

FLAMEGRAPH_PL=/usr/share/perl5/Devel/NYTProf/flamegraph.pl
if [ -f "$FLAMEGRAPH_PL" ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "tests/readers/install.sh: not root and no sudo: not installing flamegraph.pl" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tests/readers/install.sh: no apt-get: not installing flamegraph.pl" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -q --no-install-recommends libdevel-nytprof-perl >/dev/null; }
echo "tests/readers/install.sh: installing flamegraph.pl (Debian libdevel-nytprof-perl)" >&2
# The package lists may be missing or stale on a fresh machine: update and retry; a
# mirror caught mid-sync fails an update now and then, so up to three times.
if ! install 2>/dev/null; then
  for try in 1 2 3; do
    if $SUDO apt-get update -q >/dev/null && install; then exit 0; fi
    sleep $((try * 5))
  done
  echo "tests/readers/install.sh: could not install libdevel-nytprof-perl" >&2
fi
exit 0

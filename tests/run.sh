#!/usr/bin/env bash
# The whole test suite, as the README and .ci/run run it.
# Installs what the tests need beyond pip (CPython 3.14, the real readers of each output
# format), then runs pytest. Idempotent: quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SHARED=${FLAMEKIT_SHARED:-$(cd .. && pwd)/shared}

if [ -z "${FLAMEKIT_PYTHON314:-}" ]; then
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/flamekit/py314
  if [ ! -x "$dir/bin/python3.14" ]; then
    echo "tests/run.sh: installing CPython 3.14 into $dir" >&2
    # Downloads from Debian: a mirror caught mid-sync fails now and then, so three tries.
    for try in 1 2 3; do
      if bash "$SHARED/tools/get-python314.sh" "$dir" >&2; then break; fi
      [ "$try" = 3 ] && { echo "tests/run.sh: could not install CPython 3.14" >&2; exit 1; }
      sleep $((try * 5))
    done
  fi
  export FLAMEKIT_PYTHON314="$dir/bin/python3.14"
fi

for script in tests/readers/install*.sh; do
  [ -e "$script" ] && bash "$script" >&2
done

exec "$PYTHON" -m pytest "$@"

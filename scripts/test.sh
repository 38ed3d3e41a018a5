#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: makes .venv, installs Fennel with its test
# extras (which include a bundled Redis-compatible server), then runs pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test,lint]'
exec .venv/bin/python -m pytest "$@"

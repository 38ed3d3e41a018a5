#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: makes .venv, installs Fennel with its test
# extras (which include a bundled Redis-compatible server), then runs pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh "test,lint"
exec .venv/bin/python -m pytest "$@"

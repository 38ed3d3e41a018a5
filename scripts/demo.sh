#!/usr/bin/env bash
# The main job on a fresh machine: makes .venv, installs Fennel with its bundled server, then
# `fennel demo` starts a private Redis-compatible server and a worker, runs example jobs and
# prints their results.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[embedded]'
exec .venv/bin/fennel demo "$@"

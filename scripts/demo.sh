#!/usr/bin/env bash
# The main job on a fresh machine: makes .venv, installs Fennel with its bundled server, then
# `fennel demo` starts a private Redis-compatible server and a worker, runs example jobs and
# prints their results.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh "embedded"
exec .venv/bin/fennel demo "$@"

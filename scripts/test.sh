#!/usr/bin/env bash
# Install the project with its test extras into .venv and run the whole test suite.
#   ./scripts/test.sh [pytest arguments...]
# Test files run in TEST_PROCESSES (default 2) processes, a file's tests in one process (they
# share module fixtures: clusters, daemons); most of the slow tests wait on daemons, timeouts
# and faults, so two processes overlap them. TEST_PROCESSES=0 runs everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q -rs -n "${TEST_PROCESSES:-2}" --dist loadfile "$@"

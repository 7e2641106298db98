#!/usr/bin/env bash
# Install the project with its test extras into .venv and run the whole test suite.
#   ./scripts/test.sh [pytest arguments...]
# Test files run in TEST_PROCESSES (default 2) processes, a file's tests in one process (they
# share module fixtures: clusters, daemons); most of the slow tests wait on daemons, timeouts
# and faults, so two processes overlap them. TEST_PROCESSES=0 runs everything in this process.
# The tests marked `timing` assert wall time (the report opens in under 3 s); they run alone
# afterwards, so that they time the page, not the other process's test.
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
pytest() {
  # exit 5 is "no test selected" (arguments that pick none of one phase's tests)
  .venv/bin/python -m pytest "$@" || { rc=$?; [ "$rc" = 5 ] || return "$rc"; }
}
pytest -q -rs -n "${TEST_PROCESSES:-2}" --dist loadfile -m "not timing" "$@"
pytest -q -rs -p no:xdist -m timing "$@"

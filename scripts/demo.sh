#!/usr/bin/env bash
# Create .venv, install the project, generate a small sample of tracking logs, run the job on
# an embedded LocalCluster and print where the tables are, a summary and the report's path.
#   ./scripts/demo.sh [OUTPUT_DIR]      (default: ./demo-out)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-demo-out}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
echo "== generating a sample of tracking logs in $OUT/logs"
.venv/bin/dask-pipeline generate --out "$OUT/logs" --users 300 --courses 3 --days 7 --seed 1
echo "== running the job (embedded LocalCluster)"
.venv/bin/dask-pipeline run "$OUT/logs" --staff-file "$OUT/logs/staff.txt" --out "$OUT/tables"
if .venv/bin/dask-pipeline report "$OUT/tables" --html "$OUT/report.html"; then
  echo "open $OUT/report.html in a browser"
fi
echo "tables: $(cd "$OUT/tables" && pwd)/{segments,videos,views,video_stats,video_timeline,video_daily,course_stats}"

#!/usr/bin/env bash
# Run dask-pipeline on a cluster started over SSH with `dask ssh` (needs `pip install paramiko`
# here and password-less SSH to every host).
#
#   HOSTFILE=cluster/ssh/hosts.txt cluster/ssh/run_ssh.sh /shared/tracking/ \
#       --out /shared/tables --staff-file /shared/staff.txt
#
# The first host of HOSTFILE runs the scheduler; every host runs NWORKERS single-threaded
# workers with REMOTE_PYTHON, which must have this project installed at the same version.
# Inputs and --out must be paths every host sees (a shared filesystem) or object-store URLs.
# `dask ssh` has no TLS options: use it on a trusted network, or see cluster/README.md (TLS).
# The cluster is stopped when the run ends; the exit status is the run's.
set -euo pipefail

HOSTFILE=${HOSTFILE:-cluster/ssh/hosts.txt}
PORT=${PORT:-8786}
NWORKERS=${NWORKERS:-2}
REMOTE_PYTHON=${REMOTE_PYTHON:-/shared/dask-pipeline/.venv/bin/python}
LOGDIR=${LOGDIR:-/shared/dask-logs}
# `dask ssh --hostfile` would take comment words for hosts: read the hosts here instead.
mapfile -t HOSTS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HOSTFILE" | grep -v '^$')
SCHEDULER=${HOSTS[0]}

dask ssh --scheduler "$SCHEDULER" --scheduler-port "$PORT" --nworkers "$NWORKERS" --nthreads 1 --remote-python "$REMOTE_PYTHON" --log-directory "$LOGDIR" "${HOSTS[@]}" &
SSH_PID=$!
# Ctrl-C / the end of the run stops `dask ssh`, which stops the remote processes.
trap 'kill -INT "$SSH_PID" 2>/dev/null || true; wait "$SSH_PID" 2>/dev/null || true' EXIT

# Wait (up to 2 minutes) until the scheduler has at least one worker.
python - "$SCHEDULER" "$PORT" <<'PY'
import sys
from distributed import Client
with Client(f"tcp://{sys.argv[1]}:{sys.argv[2]}", timeout="120s") as c:
    c.wait_for_workers(1, timeout=120)
    print(f"cluster up: {len(c.nthreads())} workers", file=sys.stderr)
PY

dask-pipeline run "$@" --scheduler "tcp://$SCHEDULER:$PORT"

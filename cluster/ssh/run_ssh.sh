#!/usr/bin/env bash
# Run dask-pipeline on a cluster started over SSH with `dask ssh` (needs `pip install paramiko`
# here and key-based SSH to every host).
#
#   HOSTFILE=cluster/ssh/hosts.txt cluster/ssh/run_ssh.sh /shared/tracking/ \
#       --out /shared/tables --staff-file /shared/staff.txt
#
# The first host of HOSTFILE runs the scheduler; every host runs NWORKERS single-threaded
# workers with REMOTE_PYTHON, which must have this project installed at the same version.
# Inputs and --out must be paths every host sees (a shared filesystem) or object-store URLs.
#
# Settings (environment): HOSTFILE; PORT (scheduler, 8786); NWORKERS (per host, 2);
# REMOTE_PYTHON (default: this machine's python3); SSH_USER, SSH_PORT (22), SSH_KEY (a private
# key file; default: ssh-agent / ~/.ssh); LOGDIR (default ./dask-logs, made here and on every
# host: the remote processes' logs, and dask-ssh.log, the output of `dask ssh` itself);
# MIN_WORKERS (start the run once this many are connected, 1); WAIT (seconds to wait, 120).
#
# Exposure: `dask ssh` has no bind options. The scheduler listens on PORT and its dashboard
# on 8787 on EVERY interface of the first host, and workers on every interface of theirs,
# without TLS; paramiko also accepts any host key. Use it on a trusted network only; elsewhere
# start `dask scheduler --host ... --dashboard-address 127.0.0.1:8787` / `dask worker` over
# tls:// yourself (cluster/README.md, TLS).
# The cluster is stopped when the run ends or the script is interrupted; the exit status is
# the run's (1 with one line if the cluster does not come up).
set -euo pipefail
# Job control: `dask ssh` gets its own process group and keeps SIGINT (a non-interactive
# shell starts background jobs with SIGINT ignored, and then kill -INT could not stop it).
set -m

HOSTFILE=${HOSTFILE:-cluster/ssh/hosts.txt}
PORT=${PORT:-8786}
NWORKERS=${NWORKERS:-2}
REMOTE_PYTHON=${REMOTE_PYTHON:-$(command -v python3)}
LOGDIR=${LOGDIR:-$PWD/dask-logs}
WAIT=${WAIT:-120}
MIN_WORKERS=${MIN_WORKERS:-1}
SSH_OPTS=(--ssh-port "${SSH_PORT:-22}")
[ -n "${SSH_USER:-}" ] && SSH_OPTS+=(--ssh-username "$SSH_USER")
[ -n "${SSH_KEY:-}" ] && SSH_OPTS+=(--ssh-private-key "$SSH_KEY")
fail() { echo "run_ssh.sh: failed, nothing committed: $*" >&2; exit 1; }

[ -r "$HOSTFILE" ] || fail "cannot read HOSTFILE $HOSTFILE"
# `dask ssh --hostfile` would take comment words for hosts: read the hosts here instead.
mapfile -t HOSTS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HOSTFILE" | grep -v '^$' || true)
[ "${#HOSTS[@]}" -gt 0 ] || fail "no host in $HOSTFILE"
SCHEDULER=${HOSTS[0]}
mkdir -p "$LOGDIR" || fail "cannot make LOGDIR $LOGDIR"

dask ssh --scheduler "$SCHEDULER" --scheduler-port "$PORT" --nworkers "$NWORKERS" --nthreads 1 --remote-python "$REMOTE_PYTHON" --log-directory "$LOGDIR" "${SSH_OPTS[@]}" "${HOSTS[@]}" </dev/null >"$LOGDIR/dask-ssh.log" 2>&1 &
SSH_PID=$!

stop_cluster() {
  # SIGINT makes `dask ssh` close its SSH sessions; the remote processes get SIGHUP.
  kill -INT "$SSH_PID" 2>/dev/null || return 0
  for _ in $(seq 60); do
    kill -0 "$SSH_PID" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -TERM -- "-$SSH_PID" 2>/dev/null || true
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait until the scheduler has MIN_WORKERS workers, or `dask ssh` gave up.
python3 - "$SCHEDULER" "$PORT" "$SSH_PID" "$WAIT" "$LOGDIR/dask-ssh.log" "$MIN_WORKERS" <<'PY' || exit 1
import os, sys, time
from distributed import Client

host, port, pid, wait, log, n = sys.argv[1:7]
pid, wait, n = int(pid), float(wait), int(n)
deadline = time.monotonic() + wait
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        lines = [x for x in open(log, errors="replace").read().splitlines() if x.strip()]
        sys.exit(f"run_ssh.sh: failed, nothing committed: dask ssh exited at start; see {log}: "
                 + (lines[-1] if lines else "(no output)"))
    try:
        with Client(f"tcp://{host}:{port}", timeout=5) as c:
            c.wait_for_workers(n, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            print(f"cluster up: {len(c.nthreads())} workers", file=sys.stderr)
            break
    except (OSError, TimeoutError):
        pass
    if time.monotonic() > deadline:
        sys.exit(f"run_ssh.sh: failed, nothing committed: fewer than {n} workers at tcp://{host}:{port} "
                 f"after {wait:.0f} s; see {log}")
PY

# Not exec: the EXIT trap must run to stop the cluster. The status is the run's.
set +e
dask-pipeline run "$@" --scheduler "tcp://$SCHEDULER:$PORT"
status=$?
exit "$status"

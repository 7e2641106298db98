#!/usr/bin/env bash
# Submit the driver itself as a small SLURM job (it then submits the worker jobs), from the
# project's checkout on the shared filesystem:
#   cd /shared/dask-pipeline && sbatch cluster/slurm/sbatch_run.sh /shared/tracking/ \
#       --out /shared/tables --staff-file /shared/staff.txt
# DASK_PIPELINE_HOME: the checkout (default: the directory sbatch was run from);
# DASK_PIPELINE_VENV: its environment (default $DASK_PIPELINE_HOME/.venv);
# DASK_JOBS: worker jobs (default 8); RUN_SLURM_ARGS: more run_slurm.py flags (--queue ...).
# The driver holds one CPU while the worker jobs run: on a partition that does not share
# nodes, a worker job cannot use the driver's node.
#SBATCH --job-name=dask-pipeline-driver
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=06:00:00
set -euo pipefail
HOME_DIR=${DASK_PIPELINE_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
VENV=${DASK_PIPELINE_VENV:-$HOME_DIR/.venv}
if [ ! -f "$HOME_DIR/cluster/slurm/run_slurm.py" ]; then
  echo "sbatch_run.sh: no cluster/slurm/run_slurm.py in $HOME_DIR; set DASK_PIPELINE_HOME" >&2
  exit 2
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# shellcheck disable=SC2086
exec python "$HOME_DIR/cluster/slurm/run_slurm.py" --jobs "${DASK_JOBS:-8}" ${RUN_SLURM_ARGS:-} -- "$@"

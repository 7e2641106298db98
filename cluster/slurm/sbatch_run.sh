#!/usr/bin/env bash
# Submit the driver itself as a small SLURM job (it then submits the worker jobs):
#   sbatch cluster/slurm/sbatch_run.sh /shared/tracking/ --out /shared/tables --staff-file /shared/staff.txt
#SBATCH --job-name=dask-pipeline-driver
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=06:00:00
set -euo pipefail
source /shared/dask-pipeline/.venv/bin/activate
exec python /shared/dask-pipeline/cluster/slurm/run_slurm.py --jobs "${DASK_JOBS:-8}" -- "$@"

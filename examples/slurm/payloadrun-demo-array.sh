#!/usr/bin/env bash
# payloadrun's demo scenario in 4 slices as a Slurm job array, then one
# merge job (README "Scale-out").
#
#   ./payloadrun-demo-array.sh          submit: the array (0-3) and the merge,
#                                       which waits for the array (afterany)
#   (inside the array)                  run the slice SLURM_ARRAY_TASK_ID picks
#   ./payloadrun-demo-array.sh merge    merge the slices (what the merge job runs)
#
# Environment: PAYLOADRUN (the program, default: payloadrun on PATH),
# PAYLOADRUN_RESULTS (a directory every node sees, default
# ./payloadrun-demo-results). payloadrun reads SLURM_ARRAY_TASK_ID,
# SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN itself: the array must be
# contiguous with step 1 (--array=0-3, not 0-6:2).
#
#SBATCH --job-name=payloadrun-demo
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --time=00:15:00
#SBATCH --output=payloadrun-demo-%A_%a.out
set -euo pipefail

payloadrun=${PAYLOADRUN:-payloadrun}
results=${PAYLOADRUN_RESULTS:-$PWD/payloadrun-demo-results}

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # One slice. Exit status 1 (an invocation failed) is a verdict the merge
  # reports, not a failed task; 2 (bad usage) and 130 (killed) are failures.
  mkdir -p "$results"
  status=0
  "$payloadrun" run --quiet \
    --json "$results/shard-$SLURM_ARRAY_TASK_ID.json" \
    --junit "$results/shard-$SLURM_ARRAY_TASK_ID.xml" || status=$?
  if (( status <= 1 )); then exit 0; fi
  exit "$status"
fi

if [[ "${1:-}" == merge ]]; then
  # The whole scenario's verdict is this job's exit status. A slice that
  # wrote nothing is reported as a missing shard (the glob skips it).
  shopt -s nullglob
  slices=("$results"/shard-*.json)
  if (( ${#slices[@]} == 0 )); then
    echo "payloadrun-demo-array: no slice reports in $results" >&2
    exit 2
  fi
  exec "$payloadrun" merge "$results/demo.json" "${slices[@]}" --junit "$results/demo.xml"
fi

# Submit: the array, then the merge once every task ended (afterany: a
# failed task shows up as a missing shard in the merge, not as a never-run
# merge).
self=$(readlink -f "$0")
mkdir -p "$results"
export PAYLOADRUN_RESULTS=$results
array_job=$(sbatch --parsable --export=ALL "$self")
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --export=ALL --dependency="afterany:$array_job" \
  --job-name=payloadrun-demo-merge --output=payloadrun-demo-merge-%j.out --wrap="'$self' merge")
echo "submitted array job $array_job (4 slices) and merge job $merge_job; the merged report: $results/demo.json"

#!/usr/bin/env bash
# A payloadrun scenario in slices as a Slurm job array, then one merge job
# (docs/scale-out.md, "Slurm").
#
#   payloadrun-demo-array.sh [--payloadrun PATH] [--results DIR] [--wait] [SCENARIO.json] [-- SBATCH_OPTION...]
#       Submit: this script as an array (--array=0-3 unless an SBATCH_OPTION
#       says otherwise), then a merge job that starts when every task ended
#       (afterany). Prints the array job's id and where its results go. With
#       --wait, waits for the merge job (sbatch --wait) and exits with its
#       status, the whole scenario's verdict.
#   (inside the array: SLURM_ARRAY_TASK_ID is set)
#       Run the slice payloadrun reads off SLURM_ARRAY_TASK_ID, _MIN, _MAX,
#       _COUNT and _STEP (the array must be contiguous with step 1, e.g.
#       --array=5-8; every task of --array=0-6:2 or 1,3,7 refuses).
#   payloadrun-demo-array.sh [--payloadrun PATH] [--results DIR] merge ARRAY_JOB_ID
#       Merge that array's slices (what the merge job runs).
#
# PAYLOADRUN, PAYLOADRUN_SCENARIO and PAYLOADRUN_RESULTS stand for the
# options when they are not given. Defaults: payloadrun on PATH, its demo
# scenario, ./payloadrun-results (relative to the submit directory).
#
# Where things go (DIR must be a directory every node sees):
#   DIR/ARRAY_JOB_ID/shard-I.json, shard-I.xml   slice I (task id - SLURM_ARRAY_TASK_MIN)
#   DIR/ARRAY_JOB_ID/merged.json, merged.xml     the whole scenario (the merge job)
#   payloadrun-array-ARRAY_JOB_ID_TASK.out       each task's log, in the submit directory
#   payloadrun-merge-MERGE_JOB_ID.out            the merge job's log, in the submit directory
# Results are kept per array job, so a re-run into the same DIR never merges
# an earlier run's slice. Every task's log names its shard, also with
# payloadrun's --quiet.
#
# Exit status of a task: 0 when payloadrun exited 0 or 1. Exit 1 (an
# invocation failed) is a verdict the merge reports, not a failed task: as a
# task failure it would mark the task FAILED, hold back afterok dependents
# and trigger requeue policies for what is a test result. 2 (usage: a bad
# scenario, a refused array), 74 (the report could not be written), 130
# (interrupted: scancel or the time limit sent SIGTERM; the report says so)
# and 128+N (payloadrun killed by signal N, e.g. 137 for SIGKILL: no report)
# are passed on. The merge job's status is the scenario's: 0 every invocation
# ran and passed, 1 an invocation failed or a shard is missing, 2 nothing to
# merge, 130 a slice was interrupted. With --wait, the submit's status is the
# merge job's.
#
#SBATCH --job-name=payloadrun-array
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --time=00:15:00
#SBATCH --output=payloadrun-array-%A_%a.out
set -euo pipefail

say() { echo "payloadrun-array: $*" >&2; }

payloadrun=${PAYLOADRUN:-payloadrun}
results=${PAYLOADRUN_RESULTS:-}
scenario=${PAYLOADRUN_SCENARIO:-}
wait_merge=false
merge_job_of=
sbatch_options=()
while (( $# > 0 )); do
  case $1 in
    --payloadrun) payloadrun=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --wait) wait_merge=true; shift ;;
    merge) merge_job_of=${2:?"merge needs the array job's id"}; shift 2 ;;
    --) shift; sbatch_options=("$@"); break ;;
    -*) say "unknown option $1 (sbatch options go after --)"; exit 2 ;;
    *) scenario=$1; shift ;;
  esac
done
results=${results:-${SLURM_SUBMIT_DIR:-$PWD}/payloadrun-results}

if [[ -n "$merge_job_of" ]]; then
  # The merge job. A slice that wrote nothing (its task was killed or
  # refused) is reported by payloadrun as a missing shard.
  dir=$results/$merge_job_of
  shopt -s nullglob
  slices=("$dir"/shard-*.json)
  if (( ${#slices[@]} == 0 )); then
    say "no slice report of array job $merge_job_of in $dir (every task failed: see payloadrun-array-${merge_job_of}_*.out)"
    exit 2
  fi
  say "merging ${#slices[@]} slice report(s) of array job $merge_job_of into $dir/merged.json"
  exec "$payloadrun" merge "$dir/merged.json" "${slices[@]}" --junit "$dir/merged.xml"
fi

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # One task: one slice, into this array job's own directory.
  dir=$results/${SLURM_ARRAY_JOB_ID:?}
  shard=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
  name="array job $SLURM_ARRAY_JOB_ID task $SLURM_ARRAY_TASK_ID (shard $shard of ${SLURM_ARRAY_TASK_COUNT:-?})"
  mkdir -p "$dir"
  # A requeued task starts afresh: no report of an earlier attempt survives.
  rm -f "$dir/shard-$shard.json" "$dir/shard-$shard.xml"
  say "$name: ${scenario:-the demo scenario} -> $dir/shard-$shard.json"
  # scancel and the time limit send SIGTERM to every process of the job:
  # payloadrun stops its payloads and writes an interrupted report. Trapped
  # here so that this shell waits for it instead of dying first.
  trap 'say "$name: SIGTERM: waiting for payloadrun to write its report"' TERM
  status=0
  "$payloadrun" run ${scenario:+"$scenario"} --quiet \
    --json "$dir/shard-$shard.json" --junit "$dir/shard-$shard.xml" || status=$?
  case $status in
    0) what="all invocations passed" ;;
    1) what="an invocation failed (the merge reports it)" ;;
    2) what="usage error, nothing ran (payloadrun said why above)" ;;
    74) what="the report could not be written" ;;
    130) what="interrupted, the report says which invocations completed" ;;
    *) what=$( (( status > 128 )) && echo "killed by signal $(( status - 128 )), no report" || echo "failed") ;;
  esac
  task_status=$status
  if (( status <= 1 )); then task_status=0; fi
  say "$name: payloadrun exited $status: $what; task exits $task_status"
  exit "$task_status"
fi

# Submit. The merge job runs this script from where it is now (like DIR, a
# path every node sees); the array gets a copy of it (sbatch's).
self=$(readlink -f "$0")
if [[ -n "$scenario" ]]; then scenario=$(readlink -f "$scenario"); fi
if [[ "$payloadrun" == */* ]]; then payloadrun=$(readlink -f "$payloadrun"); fi
mkdir -p "$results"
results=$(readlink -f "$results")
array_job=$(sbatch --parsable "${sbatch_options[@]}" "$self" --payloadrun "$payloadrun" --results "$results" \
  ${scenario:+"$scenario"})
array_job=${array_job%%;*}
echo "payloadrun-array: submitted array job $array_job; results: $results/$array_job/shard-I.json, merged: $results/$array_job/merged.json"
merge_command=$(printf '%q ' bash "$self" --payloadrun "$payloadrun" --results "$results" merge "$array_job")
merge_options=(--parsable --dependency="afterany:$array_job" --job-name=payloadrun-merge
  --output=payloadrun-merge-%j.out --wrap="$merge_command")
if ! $wait_merge; then
  merge_job=$(sbatch "${merge_options[@]}")
  echo "payloadrun-array: submitted merge job ${merge_job%%;*} (afterany:$array_job)"
  exit 0
fi
echo "payloadrun-array: waiting for the merge job (afterany:$array_job)"
status=0
merge_job=$(sbatch --wait "${merge_options[@]}") || status=$?
echo "payloadrun-array: merge job ${merge_job%%;*} exited $status"
exit "$status"

# shellcheck shell=bash
# The SLURM side of a training run, shared by launch/train.sbatch and launch/train-gpu.sbatch.
# Sourced, it only defines functions; tests/e2e/slurm.sh tests them one by one, and the whole
# under a real slurmctld and slurmd.
#
# One job runs tessera-train with srun (one rank per task), stops it cleanly before SLURM's time
# limit, and requeues itself until --steps are done:
#   - `--resume auto` continues from <save-dir>/latest when there is one, so the first start and
#     every restart are the same command line;
#   - `--time-limit` is the job's time left less a margin, so tessera-train validates, saves and
#     exits 75 while there is still time for it (at its limit SLURM kills the job);
#   - exit 75 (stopped by SIGUSR1/SIGTERM or at the time limit, checkpoint saved) requeues the job
#     with `scontrol requeue`. It keeps its job id, so its output directory and log stay the same.

# The repository is the directory above the one holding this file.
TESSERA_SLURM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

tessera_slurm_say() { echo "tessera-slurm: $*"; }
tessera_slurm_fail() { echo "tessera-slurm: error: $*" >&2; return 1; }

# The seconds in a duration as squeue prints it (%L, the time left): [days-][hours:]minutes:seconds.
# Prints nothing for a job without a limit (UNLIMITED, NOT_SET) and fails on anything else.
tessera_slurm_seconds() {
  case "$1" in UNLIMITED | NOT_SET) return 0 ;; esac
  [[ "$1" =~ ^(([0-9]+)-([0-9]+):|([0-9]+):)?([0-9]+):([0-9]+)$ ]] || return 1
  local m=("${BASH_REMATCH[@]}")  # 2 days, 3 hours after days, 4 hours alone, 5 minutes, 6 seconds
  # 10# reads "08" as eight, not as a bad octal number.
  echo $(( ((10#${m[2]:-0} * 24 + 10#${m[3]:-${m[4]:-0}}) * 60 + 10#${m[5]}) * 60 + 10#${m[6]} ))
}

# The --time-limit in minutes for a job with $1 seconds left that stops $2 minutes before its end.
# Fails, saying why, when the margin leaves no time.
tessera_slurm_time_limit() {
  local left=$1 margin=$2
  [[ "$margin" =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    { tessera_slurm_fail "TESSERA_TIME_MARGIN_MINUTES=$margin is not a number of minutes"; return 1; }
  awk -v left="$left" -v margin="$margin" \
      'BEGIN { limit = left / 60 - margin; if (limit < 0.01) exit 1; printf "%.2f\n", limit }' ||
    tessera_slurm_fail "the job has $left s left, no more than the margin of $margin minutes" \
                       "(TESSERA_TIME_MARGIN_MINUTES): ask for a longer --time or a smaller margin"
}

# Whether the arguments after $1 give option $1, as `--opt value` or `--opt=value`.
tessera_slurm_has_option() {
  local name=$1 arg
  shift
  for arg; do [[ "$arg" == "$name" || "$arg" == "$name="* ]] && return 0; done
  return 1
}

# The value that the arguments after $1 give option $1 (the last one), or nothing.
tessera_slurm_option_value() {
  local name=$1 value="" previous="" arg
  shift
  for arg; do
    [ "$previous" = "$name" ] && value=$arg
    [[ "$arg" == "$name="* ]] && value=${arg#"$name="}
    previous=$arg
  done
  echo "$value"
}

# tessera_slurm_train [--option value]... -- [ARG]...: runs tessera-train on every task of the job
# with the user's arguments, those after `--`. The pairs before `--` are defaults, each passed only
# when the user's arguments do not give that option (Boost.Program_options refuses an option
# given twice); so are the ones added here: --out-dir, --threads, --resume, --time-limit.
# Returns 0 when the run finished or the job is requeued to go on, 75 when it stopped and may not
# be requeued again, tessera-train's exit code when it failed, and 1 when it could not start.
tessera_slurm_train() {
  local defaults=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do defaults+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  [ -n "${SLURM_JOB_ID:-}" ] || { tessera_slurm_fail "this runs inside a SLURM job: submit it with sbatch"; return 1; }

  local build=${TESSERA_BUILD_DIR:-$TESSERA_SLURM_ROOT/build}
  [ -x "$build/tessera-train" ] ||
    { tessera_slurm_fail "no $build/tessera-train: build it (launch/setup.sh) or export TESSERA_BUILD_DIR"; return 1; }

  # Slurm 22.05 to 23.02 do not pass sbatch's --cpus-per-task on to srun; this does.
  export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
  # Requeued, the job keeps its id: the same output directory at every restart.
  defaults+=(--out-dir "runs/${SLURM_JOB_NAME:-tessera}-$SLURM_JOB_ID" --threads "$SRUN_CPUS_PER_TASK"
             --resume auto)

  if ! tessera_slurm_has_option --time-limit "$@"; then
    local left limit margin=${TESSERA_TIME_MARGIN_MINUTES:-5}
    if ! left=$(tessera_slurm_seconds "$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null)"); then
      tessera_slurm_say "warning: squeue does not tell the job's time left: no --time-limit" \
                        "(the --signal warning still stops the run)"
    elif [ -n "$left" ]; then
      limit=$(tessera_slurm_time_limit "$left" "$margin") || return 1
      tessera_slurm_say "$left s left: --time-limit $limit minutes, keeping $margin for the last validation and save"
      defaults+=(--time-limit "$limit")
    fi
  fi

  local args=() i
  for ((i = 0; i + 1 < ${#defaults[@]}; i += 2)); do
    tessera_slurm_has_option "${defaults[i]}" "$@" || args+=("${defaults[i]}" "${defaults[i + 1]}")
  done
  args+=("$@")

  local launch=(srun --mpi="${TESSERA_SRUN_MPI:-pmix}" --cpu-bind=cores)
  if [ "$(tessera_slurm_option_value --device "${args[@]}")" = cuda ]; then
    # One rank per GPU. Every rank sees all the GPUs of its node and takes its local rank's one:
    # giving each task only its own GPU (--gpus-per-task=1 under cgroups) stops NCCL from reaching
    # the node's other GPUs directly (CUDA IPC over NVLink).
    local gpus=${SLURM_GPUS_ON_NODE:-0} tasks=${SLURM_TASKS_PER_NODE%%[(,]*}
    [ "$gpus" -gt 0 ] || {
      tessera_slurm_fail "--device cuda, but the job has no GPU: submit with --gpus-per-node=N --ntasks-per-node=N"
      return 1
    }
    [ "$tasks" = "$gpus" ] ||
      { tessera_slurm_fail "--device cuda runs one rank per GPU, but the node has $tasks tasks for $gpus GPUs:" \
                           "submit with --ntasks-per-node=$gpus"; return 1; }
    launch+=(--gpu-bind=none)
  fi

  tessera_slurm_say "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}), ${SLURM_NTASKS:-1} ranks on" \
                    "${SLURM_JOB_NUM_NODES:-1} node(s);" \
                    "outputs in $(tessera_slurm_option_value --out-dir "${args[@]}")"
  tessera_slurm_say "${launch[*]} $build/tessera-train ${args[*]}"
  local rc=0
  "${launch[@]}" "$build/tessera-train" "${args[@]}" || rc=$?

  case $rc in
    0) tessera_slurm_say "finished" ;;
    75)
      # Stopped before --steps with a checkpoint saved: go on later, unless it restarted enough.
      local restarts=${SLURM_RESTART_COUNT:-0} max=${TESSERA_MAX_REQUEUES:-20}
      if [ "$restarts" -ge "$max" ]; then
        tessera_slurm_say "stopped before --steps, not requeued: restarted $restarts times," \
                          "TESSERA_MAX_REQUEUES=$max; submit the same command again to go on from the last checkpoint"
        return 75
      fi
      tessera_slurm_say "stopped before --steps, checkpoint saved:" \
                        "requeueing (restart $((restarts + 1)) of at most $max)"
      # Once the job is requeued SLURM ends this script; it starts again from the top later.
      scontrol requeue "$SLURM_JOB_ID" || {
        tessera_slurm_fail "scontrol requeue failed (submitted with --no-requeue?); submit again to go on"
        return 75
      }
      ;;
    *) tessera_slurm_fail "tessera-train failed with exit code $rc"; return "$rc" ;;
  esac
}

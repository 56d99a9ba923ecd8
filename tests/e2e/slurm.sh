#!/usr/bin/env bash
# launch/train.sbatch and launch/slurm-lib.sh under SLURM.
#
#   slurm.sh functions SOURCE_DIR
# checks the library's small functions without SLURM: the time left as squeue prints it, the
# --time-limit derived from it, and the scan of the user's options.
#
#   slurm.sh jobs SOURCE_DIR TESSERA_TRAIN WORKDIR
# starts a SLURM of its own on this machine (munged, slurmctld and slurmd with their own slurm.conf,
# cluster name, ports and state in a temporary directory; a SLURM already running here is left
# alone) and submits train.sbatch from WORKDIR, as a user would, three times on 4 tasks
# (tp 2 x dp 2, tiny preset):
#   straight   runs to --steps: COMPLETED, "world 4 = tp 2 x dp 2" in its log straight-<id>.out,
#              runs/straight-<id>/train.tsv and checkpoints/latest next to it;
#   preempted  the same run, sent SIGUSR1 mid-run (scancel --signal=USR1, what SLURM does before a
#              time limit): it saves, exits 75 and requeues itself, resumes and completes; its
#              train.tsv equals straight's bit for bit (all but the seconds), each step once;
#   limited    --time=2 less a margin of 1.6 minutes (TESSERA_TIME_MARGIN_MINUTES) gives a
#              --time-limit of about 20 s (less where a busy machine starts the script late):
#              it stops there, requeues, resumes, stops again and, with TESSERA_MAX_REQUEUES=1,
#              is not requeued: FAILED with exit code 75.
# A requeued job waits two minutes before it may start again; the test moves its start to now.
#
#   slurm.sh bench SOURCE_DIR TESSERA_TRAIN WORKDIR CPUS RANKS
# starts the same SLURM with its node declared as CPUS CPUs and times `srun --mpi=pmix -n RANKS`
# of 40 data-parallel steps of the tiny preset, twice with the progress threads polling
# (OMPI_MCA_mpi_yield_when_idle=0, Tessera's old default) and twice yielding (today's default),
# printing the wall time of each (docs/performance.md, "Progress threads on a full node").
# It needs root to start the daemons, and installs slurm-wlm and munge when they are missing;
# it skips (exit 77) when it cannot. Daemons, jobs and the temporary directory go on exit.
set -euo pipefail
mode=$1 src=$2

fail() {
  echo "FAIL: $*"
  for log in "${work:-/nonexistent}"/*.out; do [ -f "$log" ] && { echo "--- $log"; tail -25 "$log"; }; done
  [ -n "${state:-}" ] && [ -f "$state/slurmctld.log" ] && { echo "--- slurmctld.log"; tail -15 "$state/slurmctld.log"; }
  exit 1
}
skip() { echo "SKIP: $*"; exit 77; }
want() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

source "$src/launch/slurm-lib.sh"

if [ "$mode" = functions ]; then
  want "0:08 in seconds" "$(tessera_slurm_seconds 0:08)" 8
  want "59:59 in seconds" "$(tessera_slurm_seconds 59:59)" 3599
  want "1:00:00 in seconds" "$(tessera_slurm_seconds 1:00:00)" 3600
  want "23:59:09 in seconds" "$(tessera_slurm_seconds 23:59:09)" 86349
  want "2-03:04:05 in seconds" "$(tessera_slurm_seconds 2-03:04:05)" $((2 * 86400 + 3 * 3600 + 4 * 60 + 5))
  want "UNLIMITED in seconds" "$(tessera_slurm_seconds UNLIMITED)" ""
  want "NOT_SET in seconds" "$(tessera_slurm_seconds NOT_SET)" ""
  for bad in "" INVALID 12 1-02:03 1:2:3:4 -5:00; do
    ! tessera_slurm_seconds "$bad" >/dev/null || fail "tessera_slurm_seconds accepted '$bad'"
  done
  want "limit for 1 hour, margin 5" "$(tessera_slurm_time_limit 3600 5)" 55.00
  want "limit for 59 s, margin 0.8" "$(tessera_slurm_time_limit 59 0.8)" 0.18
  ! tessera_slurm_time_limit 300 5 2>/dev/null || fail "a margin of all the time left gave a time limit"
  ! tessera_slurm_time_limit 3600 five 2>/dev/null || fail "a margin of 'five' minutes gave a time limit"
  tessera_slurm_has_option --out-dir --config x --out-dir y || fail "--out-dir y not seen"
  tessera_slurm_has_option --out-dir --out-dir=y || fail "--out-dir=y not seen"
  ! tessera_slurm_has_option --out-dir --out-dirs y --save-dir --out-dir-x || fail "--out-dir seen in other options"
  want "--device value" "$(tessera_slurm_option_value --device --device cpu --steps 3 --device=cuda)" cuda
  want "--device value" "$(tessera_slurm_option_value --device --device cuda --steps 3)" cuda
  want "missing --device" "$(tessera_slurm_option_value --device --steps 3)" ""
  echo PASS
  exit 0
fi

train=$3 work=$4 node_cpus=12
[ "$mode" = bench ] && node_cpus=$5 bench_ranks=$6
[ "$(id -u)" = 0 ] || skip "starting munged, slurmctld and slurmd needs root"
tools=(munged mungekey slurmctld slurmd sbatch squeue scontrol scancel sinfo srun)
missing_tools() { for t in "${tools[@]}"; do command -v "$t" >/dev/null || return 0; done; return 1; }
rm -rf "$work" && mkdir -p "$work"
if missing_tools; then
  echo "installing slurm-wlm and munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
    >"$work/apt.log" 2>&1 || true
  missing_tools && skip "slurm-wlm and munge are missing and could not be installed ($work/apt.log)"
fi

# --- a SLURM of our own: one node, this machine, declared with 12 CPUs so that all three jobs of
# 4 tasks run at once (slurmd takes the node's CPUs from slurm.conf with config_overrides) ---
# The daemons' state in memory where there is /dev/shm: slurmctld syncs its state files, and on a
# busy disk that can keep it from answering for many seconds. A short path: the munge socket's
# must fit a sockaddr.
state=$(mktemp -d -p /dev/shm tessera-slurm.XXXXXX 2>/dev/null || mktemp -d /tmp/tessera-slurm.XXXXXX)
export SLURM_CONF=$state/slurm.conf
daemons=() signaller=""
cleanup() {
  set +e
  [ -n "$signaller" ] && kill "$signaller" 2>/dev/null
  squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null
  for _ in $(seq 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
  [ ${#daemons[@]} -gt 0 ] && kill "${daemons[@]}" 2>/dev/null && wait "${daemons[@]}" 2>/dev/null
  # Whatever the jobs left (a slurmstepd, a rank) still has our SLURM_CONF in its environment.
  for environ in /proc/[0-9]*/environ; do
    pid=${environ//[^0-9]/}
    [ "$pid" != $$ ] && grep -qzx "SLURM_CONF=$SLURM_CONF" "$environ" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  mkdir -p "$work/daemons" && cp "$state"/*.log "$state"/*.out "$work/daemons/" 2>/dev/null  # for a post-mortem
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {  # a TCP port on which nothing listens here
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  return 1
}
ctld_port=$(free_port) slurmd_port=$(free_port)
[ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$((ctld_port + 1))
node=$(hostname -s)
cat >"$SLURM_CONF" <<EOF
ClusterName=tessera-test-$$
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge.socket
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
KillWait=5
# Jobs may be requeued only when they ask (sbatch --requeue), as on many clusters.
JobRequeue=0
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$node_cpus State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p "$state/slurmctld" "$state/slurmd"
mungekey --create --keyfile="$state/munge.key"
munged --foreground --force --socket="$state/munge.socket" --key-file="$state/munge.key" \
       --pid-file="$state/munged.pid" --log-file="$state/munged.log" --seed-file="$state/munged.seed" \
       >"$state/munged.out" 2>&1 &
daemons+=($!)
for _ in $(seq 40); do [ -S "$state/munge.socket" ] && break; sleep 0.25; done
slurmctld -D >"$state/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D -N "$node" >"$state/slurmd.out" 2>&1 &
daemons+=($!)
for _ in $(seq 120); do [ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] && break; sleep 0.25; done
[ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] ||
  { cat "$state"/*.out; fail "our SLURM did not come up (node state '$(sinfo -h -n "$node" -o %T 2>&1)')"; }
echo "SLURM up: cluster tessera-test-$$, slurmctld on port $ctld_port, slurmd on $slurmd_port ($SECONDS s)"

if [ "$mode" = bench ]; then
  cd "$work"
  timed_run() {  # LABEL VAR=VALUE: one srun of the ranks, its wall time
    local start=$EPOCHREALTIME
    env "$2" srun --mpi=pmix -n "$bench_ranks" "$train" --config "$src/configs/tiny.cfg" --data-parallel "$bench_ranks" \
        --steps 40 --out-dir "$work/$1" >"$work/$1.log" 2>&1 || fail "$1: srun failed ($work/$1.log)"
    awk -v end="$EPOCHREALTIME" -v start="$start" -v run="$1" 'BEGIN { printf "%s: %.2f s\n", run, end - start }'
  }
  echo "node of $node_cpus CPUs (slurm.conf) on $(nproc) cores, srun -n $bench_ranks"
  for i in 1 2; do
    timed_run "polling-$i" OMPI_MCA_mpi_yield_when_idle=0
    timed_run "yielding-$i" TESSERA_BENCH_DEFAULTS=1
  done
  grep -m1 "threads per rank" "$work/yielding-1.log"
  exit 0
fi

# --- the jobs, submitted from the work directory like a user's, with the repository found from
# the path of the submitted script (not TESSERA_ROOT) and tessera-train from this build ---
unset TESSERA_ROOT TESSERA_TIME_MARGIN_MINUTES TESSERA_MAX_REQUEUES TESSERA_TEST_SLOW_RANK
export TESSERA_BUILD_DIR=${train%/*}
# 12 ranks on a machine of few cores: MPI ranks waiting in a collective yield the core.
export OMPI_MCA_mpi_yield_when_idle=1
steps=500
tiny=(--config "$src/configs/tiny.cfg" --tensor-parallel 2 --data-parallel 2 --batch-sentences 16 --log-every 100)
cd "$work"
# The user's own --threads and --out-dir replace the script's (no "given twice"), in both spellings.
straight=$(sbatch --parsable --job-name=straight --ntasks=4 --time=10 "$src/launch/train.sbatch" \
                  "${tiny[@]}" --steps $steps --threads 1)
# TESSERA_TEST_SLOW_RANK=0:0.04 (tessera-train's test hook) has rank 0 sleep 40 ms before each
# step: the preempted run lasts 20 s or more without taking the CPU, so the signal comes mid-run
# however busy the machine. The numbers stay those of the straight run.
preempted=$(TESSERA_TEST_SLOW_RANK=0:0.04 sbatch --parsable --job-name=preempted --ntasks=4 --time=10 \
                   "$src/launch/train.sbatch" "${tiny[@]}" --steps $steps)
# SLURM sends --signal's warning up to a minute early: with --time=2, 1 s ahead means 90 s in,
# after both of limited's runs. Its steps do not matter: sleeping 100 ms before each, it leaves
# the CPU to the other two.
limited=$(TESSERA_TIME_MARGIN_MINUTES=1.6 TESSERA_MAX_REQUEUES=1 TESSERA_TEST_SLOW_RANK=0:0.1 \
          sbatch --parsable --job-name=limited --ntasks=4 --time=2 --signal=USR1@1 "$src/launch/train.sbatch" \
                 "${tiny[@]}" --steps 100000 --out-dir=limited)
echo "submitted straight ($straight), preempted ($preempted), limited ($limited)"

# SIGUSR1 to the preempted job as soon as its run is training (its stop handler is set by then),
# from a watcher of its own: the loop below may wait seconds for slurmctld's answers.
(
  curve=runs/preempted-$preempted/train.tsv
  until [ -f "$curve" ] && [ "$(wc -l <"$curve")" -gt 10 ]; do sleep 0.1; done
  scancel --signal=USR1 "$preempted" && echo "sent SIGUSR1 to job $preempted ($SECONDS s)"
) &
signaller=$!
deadline=$((SECONDS + 240))
while :; do
  # One line per job, finished ones included: "ID STATE REASON".
  jobs=$(squeue -h -t all -j "$straight,$preempted,$limited" -o "%i %T %r") || { sleep 0.5; continue; }
  [ "$(grep -cE " (COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) " <<<"$jobs")" = 3 ] && break
  [ $SECONDS -lt $deadline ] || fail "the jobs did not finish within 240 s: $jobs"
  for job in $(awk '$3 == "BeginTime" { print $1 }' <<<"$jobs"); do  # requeued: start now, not in two minutes
    scontrol update JobId="$job" StartTime=now && echo "job $job requeued, starts again now ($SECONDS s)"
  done
  sleep 0.5
done
if kill -0 "$signaller" 2>/dev/null; then
  fail "job $preempted ended before its run was under way, and was never signalled: $jobs"
fi
wait "$signaller" || fail "scancel --signal=USR1 $preempted failed"
signaller=""
echo "all jobs ended ($SECONDS s)"

field() {  # field JOB NAME: one field of scontrol's record of the job, asked again if slurmctld is slow
  local record=""
  for _ in 1 2 3 4 5; do record=$(scontrol show job -o "$1" 2>/dev/null) && break; sleep 1; done
  tr ' ' '\n' <<<"$record" | sed -n "s/^$2=//p"
}

# straight: finished, where the script says its log and outputs go
want "straight's state" "$(field "$straight" JobState)" COMPLETED
log=straight-$straight.out out=runs/straight-$straight
[ -f "$log" ] || fail "no SLURM log $work/$log"
grep -q "world 4 = tp 2 x dp 2" "$log" || fail "$log does not say 'world 4 = tp 2 x dp 2'"
grep -qE -- "--time-limit (4\.[0-9]+|5\.00) minutes" "$log" ||
  fail "$log: no --time-limit of 10 minutes less the margin of 5"
want "straight's train.tsv lines" "$(wc -l <"$out/train.tsv")" $((steps + 1))
want "straight's latest checkpoint" "$(cat "$out/checkpoints/latest")" "step-$(printf %08d $steps)"
echo "straight: COMPLETED; log $log, curves and checkpoints in $out"

# preempted: stopped by the signal, requeued, resumed, finished as if never stopped
want "preempted's state" "$(field "$preempted" JobState)" COMPLETED
want "preempted's restarts" "$(field "$preempted" Restarts)" 1
log=preempted-$preempted.out out=runs/preempted-$preempted
line=$(grep -m1 "received SIGUSR1: saving a checkpoint at step" "$log") ||
  fail "$log: no stop on SIGUSR1 (did the signal come after the last step?)"
stop_step=$(sed -E 's/.*at step ([0-9]+).*/\1/' <<<"$line")
grep -q "requeueing (restart 1 of at most 20)" "$log" || fail "$log: the stopped job did not requeue itself"
grep -q "resumed from .*step-$(printf %08d "$stop_step") at step $stop_step" "$log" ||
  fail "$log: the requeued job did not resume from step $stop_step"
without_seconds() { awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") s = i }
                                { line = ""; for (i = 1; i <= NF; i++) if (i != s) line = line $i "\t"; print line }' "$1"; }
[ "$(without_seconds "$out/train.tsv")" = "$(without_seconds "runs/straight-$straight/train.tsv")" ] ||
  fail "preempted's train.tsv differs from straight's (each step once, same numbers)"
echo "preempted: SIGUSR1 at step $stop_step, exit 75, requeued, resumed, COMPLETED;" \
     "train.tsv equals the uninterrupted run's bit for bit"

# limited: stopped by the --time-limit derived from the job's, twice; requeued once only
want "limited's state" "$(field "$limited" JobState)" FAILED
want "limited's exit code" "$(field "$limited" ExitCode)" 75:0
want "limited's restarts" "$(field "$limited" Restarts)" 1
log=limited-$limited.out
want "limited's time limits reached" "$(grep -cE "time limit of 0\.[0-9]+ minutes reached" "$log")" 2
grep -q "resumed from .*limited/checkpoints/step-" "$log" || fail "$log: the requeued job did not resume"
grep -q "not requeued: restarted 1 times, TESSERA_MAX_REQUEUES=1" "$log" ||
  fail "$log: no word of the requeue limit"
tail -n +2 limited/train.tsv | cut -f1 | sort -n | uniq -d | grep -q . && fail "limited/train.tsv repeats steps"
echo "limited: --time-limit from the job's time left stopped it twice, requeued once, then exit 75"
echo "PASS ($SECONDS s)"

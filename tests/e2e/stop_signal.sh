#!/usr/bin/env bash
# A stop signal (what SLURM sends before a time limit or a preemption) ends a run cleanly, and the
# same command line continues it. A run with --resume auto - a tp RANKS job under mpirun, or a
# single process without a launcher when RANKS is 1 - gets SIGNAL on every rank mid-run, and the
# same signal again while it writes its checkpoint (writes slowed to 1 s by a test hook); it must
# save the step it stopped at, untouched by the second signal, and exit with code 75. Started
# again with the same command line it resumes from that checkpoint, and the finished run's
# parameters and moments equal an uninterrupted run's bit for bit, with one line per step in
# train.tsv.
# usage: stop_signal.sh SIGNAL RANKS MPIRUN... -- TESSERA_TRAIN CONFIG WORKDIR
set -euo pipefail
signal=$1 ranks=$2
shift 2
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
steps=1000
fail() { echo "FAIL: $*"; exit 1; }
launcher=("${mpirun[@]}" -np "$ranks")
[ "$ranks" = 1 ] && launcher=()
run() {  # run OUT_DIR: the one command line of every (re)start
  "${launcher[@]}" "$train" --config "$config" --tensor-parallel "$ranks" --threads 1 --steps $steps \
    --log-every 500 --batch-sentences 16 --resume auto --out-dir "$1"
}
shard_sums() { grep -o '"bytes":[0-9]*,"file":"[^"]*","xxh3":"[0-9a-f]*"' "$1/manifest.json"; }

run "$work/straight" >"$work/straight.log" 2>&1 || { cat "$work/straight.log"; fail "the uninterrupted run failed"; }

TESSERA_TEST_SLOW_SHARD_WRITE=1 run "$work/stopped" >"$work/first.log" 2>&1 &
job=$!
for _ in $(seq 600); do  # until 200 steps are done (at most 60 s)
  [ "$(wc -l 2>/dev/null <"$work/stopped/train.tsv" || echo 0)" -gt 200 ] && break
  sleep 0.1
done
pkill "-$signal" -f "^$train .*$work/stopped" || fail "no rank to signal"  # the ranks, not mpirun
for _ in $(seq 300); do  # the save has begun (at most 30 s)
  grep -q "saving a checkpoint at step" "$work/first.log" && break
  sleep 0.1
done
pkill "-$signal" -f "^$train .*$work/stopped" || fail "the ranks were gone before the second $signal"
rc=0
wait "$job" || rc=$?
[ "$rc" = 75 ] || { cat "$work/first.log"; fail "exit code $rc after $signal, want 75"; }
line=$(grep -m1 "received SIG$signal: saving a checkpoint at step" "$work/first.log") || fail "no stop message"
stop_step=$(sed -E 's/.*at step ([0-9]+).*/\1/' <<<"$line")
[ "$(cat "$work/stopped/checkpoints/latest")" = "step-$(printf '%08d' "$stop_step")" ] ||
  fail "latest is $(cat "$work/stopped/checkpoints/latest"), not the stop step $stop_step"
echo "stopped by $signal at step $stop_step, exit code 75, checkpoint saved"

run "$work/stopped" >"$work/second.log" 2>&1 || { cat "$work/second.log"; fail "the restart failed"; }
grep -q "resumed from .*step-$(printf '%08d' "$stop_step") at step $stop_step" "$work/second.log" ||
  fail "the restart did not resume from step $stop_step"
a=$(shard_sums "$work/straight/checkpoints/step-$(printf '%08d' $steps)")
b=$(shard_sums "$work/stopped/checkpoints/step-$(printf '%08d' $steps)")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "final checkpoints differ: $a vs $b"
[ "$(cut -f1 "$work/stopped/train.tsv" | tail -n +2 | sort -n | uniq | wc -l)" = $steps ] &&
  [ "$(wc -l <"$work/stopped/train.tsv")" = $((steps + 1)) ] || fail "train.tsv does not hold each step once"
echo "resumed with the same command line; final state equals the uninterrupted run's bit for bit"
echo PASS

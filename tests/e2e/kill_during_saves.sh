#!/usr/bin/env bash
# SIGKILLs during checkpoint saves. A tp 2 x dp 2 run under mpirun saves every 2 steps in the
# background (--async-save, with shard writes slowed to 0.1 s so that a kill usually lands while
# one is being written), and the whole job - mpirun and every rank, like a cluster ending a job -
# is killed with SIGKILL at a random moment, KILLS times; after each kill it is restarted from its
# save directory. Checked:
#   - after every kill, `latest` names a complete checkpoint that verifies, and the restarted run
#     resumes from exactly that one;
#   - the run that finishes has parameters and Adam moments equal, bit for bit, to an
#     uninterrupted run's (the checksums of the final checkpoints' shards are equal).
# usage: kill_during_saves.sh KILLS MPIRUN... -- TESSERA_TRAIN TESSERA_CKPT CONFIG WORKDIR
#   (TESSERA_KILL_SEED=N replays the kill times; the seed is printed)
set -euo pipefail
kills=$1
shift
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" ckpt="$2" config="$3" work="$4"
seed=${TESSERA_KILL_SEED:-$(( $(date +%s%N) % 100000 ))}
RANDOM=$seed
echo "kill seed $seed (replay with TESSERA_KILL_SEED=$seed)"
rm -rf "$work" && mkdir -p "$work"
export TESSERA_TEST_SLOW_SHARD_WRITE=0.1
steps=$((50 * kills + 40))  # long enough that every kill lands before the end
run() {  # run OUT_DIR [extra options...]
  local out=$1
  shift
  "${mpirun[@]}" -np 4 "$train" --config "$config" --tensor-parallel 2 --data-parallel 2 --threads 1 \
    --steps $steps --log-every 20 --batch-sentences 16 --save-every 2 --keep-last 3 --async-save \
    --out-dir "$out" "$@"
}
fail() { echo "FAIL: $*"; exit 1; }
shard_sums() { grep -o '"bytes":[0-9]*,"file":"[^"]*","xxh3":"[0-9a-f]*"' "$1/manifest.json"; }

run "$work/straight" >"$work/straight.log" 2>&1 || { cat "$work/straight.log"; fail "the uninterrupted run failed"; }

out="$work/killed"
for ((k = 1; k <= kills; ++k)); do
  resume=()
  [ -f "$out/checkpoints/latest" ] && resume=(--resume "$out/checkpoints")
  delay_ms=$((700 + RANDOM % 2300))
  setsid bash -c "$(declare -f run); $(declare -p mpirun train config steps); run \"\$@\"" run "$out" "${resume[@]}" \
    >"$work/killed-$k.log" 2>&1 &
  job=$!
  sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
  if ! kill -0 "$job" 2>/dev/null; then
    echo "kill $k: the run had already finished after ${delay_ms} ms; restarting it to the end"
    break
  fi
  kill -KILL -- "-$job" 2>/dev/null || true
  wait "$job" 2>/dev/null || true
  pkill -KILL -f "$out" 2>/dev/null || true  # any rank that outlived its launcher
  sleep 0.2
  if [ -f "$out/checkpoints/latest" ]; then
    latest=$(cat "$out/checkpoints/latest")
    "$ckpt" verify "$out/checkpoints/$latest" >"$work/verify-$k.log" 2>&1 ||
      { cat "$work/verify-$k.log"; fail "after kill $k, latest ($latest) does not verify"; }
    staged=$(cd "$out/checkpoints" && ls -d step-*.staging 2>/dev/null | tr '\n' ' ' || true)
    echo "kill $k after ${delay_ms} ms: latest = $latest (verified)${staged:+; interrupted save: $staged}"
  else
    latest=""
    echo "kill $k after ${delay_ms} ms: no checkpoint yet"
  fi
  printf '%s\n' "$latest" >"$work/latest-before-$((k + 1))"
done

final_resume=()
[ -f "$out/checkpoints/latest" ] && final_resume=(--resume "$out/checkpoints")
run "$out" "${final_resume[@]}" >"$work/final.log" 2>&1 || { cat "$work/final.log"; fail "the last restart failed"; }

# Every restart resumed from the checkpoint `latest` named when the job was killed.
for log in "$work"/killed-*.log "$work/final.log"; do
  n=$(basename "$log" .log)
  n=${n#killed-}
  [ "$n" = final ] && n=$((kills + 1))
  [ -f "$work/latest-before-$n" ] || continue
  want=$(cat "$work/latest-before-$n")
  if [ -n "$want" ]; then
    grep -q "resumed from .*/$want at step" "$log" || fail "restart $n did not resume from $want: $(grep -m1 resumed "$log" || echo 'no resume line')"
  fi
done

a=$(shard_sums "$work/straight/checkpoints/step-$(printf '%08d' $steps)")
b=$(shard_sums "$out/checkpoints/step-$(printf '%08d' $steps)")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "final checkpoints differ:
uninterrupted: $a
after kills:   $b"
echo "final parameters and moments equal the uninterrupted run's bit for bit:"
echo "$b"
echo PASS

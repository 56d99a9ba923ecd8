#!/usr/bin/env bash
# End-to-end checks of what protects a run's output, on tessera-train itself.
# usage: run_safety.sh CASE MPIRUN... -- TESSERA_TRAIN CONFIG WORKDIR
#   lock    a second run on the same --out-dir refuses at start-up naming the first's host and pid
#   resume  resuming into the same --out-dir continues train.tsv/valid.tsv from the checkpoint's step
#   diverge --lr-factor 1e9 stops with an error naming the step, and saves no checkpoint
set -euo pipefail
case_name=$1
shift
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
common=(--config "$config" --threads 1 --log-every 10)

case "$case_name" in
lock)
  "$train" "${common[@]}" --steps 100000 --out-dir "$work/run" >"$work/first.log" 2>&1 &
  first=$!
  trap 'kill $first 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q "pid $first" "$work/run/.tessera.lock" 2>/dev/null && break; sleep 0.1; done
  grep -q "pid $first" "$work/run/.tessera.lock" || fail "the first run never took the lock"
  if "$train" "${common[@]}" --steps 5 --out-dir "$work/run" >"$work/second.log" 2>&1; then
    fail "a second run on the same --out-dir was allowed"
  fi
  grep -q "in use by another run (host $(uname -n) pid $first" "$work/second.log" || fail "the refusal does not name the first run"
  kill -9 $first; wait $first 2>/dev/null || true
  # The lock dies with its holder: a new run starts.
  "$train" "${common[@]}" --steps 5 --out-dir "$work/run" >"$work/third.log" 2>&1 || fail "the lock outlived a killed holder"
  echo "PASS: $(grep -o 'in use by another run ([^)]*)' "$work/second.log")"
  ;;
resume)
  "${mpirun[@]}" -np 2 "$train" "${common[@]}" --data-parallel 2 --steps 30 --save-every 10 --valid-every 10 \
    --out-dir "$work/run" >"$work/straight.log" 2>&1 || fail "the first run failed"
  cp "$work/run/train.tsv" "$work/straight.tsv"
  cp "$work/run/valid.tsv" "$work/straight-valid.tsv"
  "${mpirun[@]}" -np 2 "$train" "${common[@]}" --data-parallel 2 --steps 30 --save-every 10 --valid-every 10 \
    --out-dir "$work/run" --resume "$work/run/checkpoints/step-00000020" >"$work/resumed.log" 2>&1 || fail "the resumed run failed"
  # Every step 1-30 once, in order; steps 1-20 are the first run's rows, untouched; 21-30 redone
  # bit for bit (columns 1-5; column 6 is seconds).
  [ "$(cut -f1 "$work/run/train.tsv" | tail -n +2 | tr '\n' ' ')" = "$(seq 1 30 | tr '\n' ' ')" ] ||
    fail "train.tsv does not hold steps 1-30 once each: $(cut -f1 "$work/run/train.tsv" | tr '\n' ' ')"
  diff <(head -21 "$work/straight.tsv") <(head -21 "$work/run/train.tsv") >/dev/null || fail "rows 1-20 changed"
  diff <(cut -f1-5 "$work/straight.tsv") <(cut -f1-5 "$work/run/train.tsv") >/dev/null || fail "redone rows differ"
  [ "$(cut -f1 "$work/run/valid.tsv" | tail -n +2 | tr '\n' ' ')" = "10 20 30 " ] ||
    fail "valid.tsv does not hold steps 10, 20, 30 once each"
  echo "PASS: train.tsv and valid.tsv continued from step 20"
  ;;
diverge)
  if "$train" "${common[@]}" --steps 200 --save-every 1 --lr-factor 1e9 --out-dir "$work/run" >"$work/diverge.log" 2>&1; then
    fail "a run at --lr-factor 1e9 exited 0"
  fi
  grep -Eq "error: step [0-9]+: .*the update was not applied" "$work/diverge.log" || fail "no error naming the step"
  saved=$(grep -c "saved checkpoint" "$work/diverge.log" || true)
  # Checkpoints before the bad step are fine; none may hold inf or NaN, and none is left half-made.
  for dir in "$work"/run/checkpoints/step-*; do
    [ -e "$dir" ] || continue
    [ -f "$dir/manifest.json" ] || fail "$dir has no manifest"
  done
  echo "PASS: $(grep -o 'error: step [0-9]*' "$work/diverge.log"), $saved checkpoints before it"
  ;;
*)
  echo "unknown case $case_name"; exit 2 ;;
esac

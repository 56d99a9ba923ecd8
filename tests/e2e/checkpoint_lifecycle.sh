#!/usr/bin/env bash
# What a long run's checkpoints go through, with tessera-train itself (tp 2 under mpirun):
#   1. a requeued job that resumes from its final checkpoint does not save that step again (the
#      checkpoint's files are untouched: same inode);
#   2. resuming as a different model (other --heads, --activation) is refused, naming each option;
#   3. resuming with other training options works and logs each change;
#   4. --keep-last 2 --keep-every 4 keeps the newest two and every multiple of 4.
# usage: checkpoint_lifecycle.sh MPIRUN... -- TESSERA_TRAIN CONFIG WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; [ -f "${log:-}" ] && cat "$log"; exit 1; }
run() { "${mpirun[@]}" -np 2 "$train" --config "$config" --tensor-parallel 2 --threads 1 --log-every 10 \
          --batch-sentences 16 "$@"; }

log="$work/first.log"
run --steps 10 --save-every 5 --save-dir "$work/ckpt" >"$log" 2>&1 || fail "the first run failed"
inode=$(stat -c %i "$work/ckpt/step-00000010/manifest.json")

log="$work/requeued.log"
run --steps 10 --save-dir "$work/ckpt" --resume "$work/ckpt" >"$log" 2>&1 || fail "the requeued run failed"
grep -q "step 10 is already saved in .*step-00000010; not saving it again" "$log" || fail "step 10 was saved again"
[ "$(stat -c %i "$work/ckpt/step-00000010/manifest.json")" = "$inode" ] || fail "the final checkpoint was rewritten"
echo "1. requeued at its final step: nothing rewritten"

log="$work/other-model.log"
if run --steps 12 --heads 2 --activation gelu --save-dir "$work/other" --resume "$work/ckpt" >"$log" 2>&1; then fail "a different model resumed"; fi
grep -q "is a different model: --activation relu -> gelu; --heads 4 -> 2" "$log" || fail "the error does not name the options"
echo "2. $(grep -m1 -o 'is a different model: .*-> 2' "$log")"

log="$work/changed.log"
run --steps 12 --lr-factor 2 --save-dir "$work/ckpt" --resume "$work/ckpt" >"$log" 2>&1 || fail "resuming with another --lr-factor failed"
grep -q "resumed with a changed option: --lr-factor 1 -> 2" "$log" || fail "the change of --lr-factor is not logged"
echo "3. $(grep -m1 -o 'resumed with a changed option: --lr-factor.*' "$log")"

log="$work/retention.log"
run --steps 20 --save-every 2 --keep-last 2 --keep-every 4 --save-dir "$work/kept" >"$log" 2>&1 || fail "retention run failed"
kept=$(cd "$work/kept" && ls -d step-* | tr '\n' ' ')
[ "$kept" = "step-00000004 step-00000008 step-00000012 step-00000016 step-00000018 step-00000020 " ] ||
  fail "--keep-last 2 --keep-every 4 kept: $kept"
[ "$(cat "$work/kept/latest")" = step-00000020 ] || fail "latest is $(cat "$work/kept/latest")"
echo "4. kept: $kept"
echo PASS

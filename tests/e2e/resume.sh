#!/usr/bin/env bash
# A resumed run reproduces the uninterrupted one: train 20 steps (saving at step 10), then resume
# a second run from the step-10 checkpoint; steps 11-20 must have bit-identical losses and
# gradient norms. Both runs use tp=2 under mpirun, dropout on.
# usage: resume.sh MPIRUN... -- TESSERA_TRAIN CONFIG WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
common=(--config "$config" --tensor-parallel 2 --threads 1 --steps 20 --log-every 10 --batch-sentences 16)
"${mpirun[@]}" -np 2 "$train" "${common[@]}" --save-every 10 --out-dir "$work/straight" >"$work/straight.log" 2>&1
"${mpirun[@]}" -np 2 "$train" "${common[@]}" --resume "$work/straight/checkpoints/step-00000010" \
  --out-dir "$work/resumed" >"$work/resumed.log" 2>&1
grep -q "resumed from .*step-00000010 at step 10" "$work/resumed.log" || { cat "$work/resumed.log"; exit 1; }
# Columns 1-5: step, loss, grad norm, lr, tokens (column 6, seconds, differs by nature).
expected=$(awk -F'\t' 'NR > 1 && $1 > 10 {print $1, $2, $3, $4, $5}' "$work/straight/train.tsv")
actual=$(awk -F'\t' 'NR > 1 {print $1, $2, $3, $4, $5}' "$work/resumed/train.tsv")
if [ "$expected" != "$actual" ]; then
  echo "resumed run differs from the uninterrupted one:"
  diff <(echo "$expected") <(echo "$actual") || true
  exit 1
fi
echo "steps 11-20 identical after resume:"
echo "$actual"

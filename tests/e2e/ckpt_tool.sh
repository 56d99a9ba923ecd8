#!/usr/bin/env bash
# tessera-ckpt end to end, on checkpoints of a real (short) training run. One case per ctest test:
#   setup          a made-up German->English corpus through tessera-prep, then tessera-train on one
#                  process to step 10 and, resumed under mpirun with tp 2, to step 20, saving every
#                  5 steps: steps 5 and 10 are written by tp 1, steps 15 and 20 by tp 2
#   verify         inspect and verify pass on the run; a flipped byte fails verify (exit 1, naming the
#                  file and the tensor), a missing shard too; bad usage exits 2
#   convert        tp 2 -> 1 -> 2 -> 1 gives back the same shard files byte for byte; converted
#                  checkpoints score exactly as the source in tessera-translate (tp 1 and tp 2);
#                  bf16 stores BF16, verifies, and scores within bf16 rounding; --weights-only
#   average        --last 3 (across tp 1 and tp 2 checkpoints) averages steps 10, 15, 20, leaves
#                  `latest` alone and loads in tessera-translate; --last 1 exports identically to
#                  the newest checkpoint
#   export_python  the export, read with Python's safetensors alone, holds every parameter of the
#                  checkpoint (assembled from its tp 2 blocks) bit for bit; an average's export is
#                  the f64 mean of its checkpoints rounded to f32 (skipped without safetensors)
#   pytorch        tools/load_into_pytorch.py loads exports of the post-LN/ReLU run and of a
#                  pre-LN/GELU model into torch.nn.Transformer, and their log-probabilities match
#                  the C++ forward pass within 1e-4 (skipped without torch)
# usage: ckpt_tool.sh CASE MPIRUN... -- PREP TRAIN TRANSLATE CKPT REFERENCE_LOGPROBS SOURCE_DIR WORKDIR
set -euo pipefail
case_name="$1"; shift
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
prep="$1" train="$2" translate="$3" ckpt="$4" reference="$5" source_dir="$6" work="$7"
root="$work/run/run/checkpoints"  # the save root the setup case trains into
here="$work/$case_name"
fail() { echo "FAIL: $*"; for f in "$here"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }
# expect_exit CODE LOGNAME COMMAND...: runs COMMAND, output to LOGNAME.log, and checks its exit code.
expect_exit() {
  local want=$1 name=$2; shift 2
  local got=0
  "$@" >"$here/$name.log" 2>&1 || got=$?
  [ "$got" = "$want" ] || fail "$name: exit $got, expected $want: $*"
}
# score CHECKPOINT [MPIRUN -np N -- ] [OPTIONS]: tessera-translate --score's line on the dev set.
score() {
  local checkpoint=$1; shift
  local launcher=()
  if [ "${1:-}" = mpi ]; then launcher=("${mpirun[@]}" -np 2); shift; fi
  "${launcher[@]}" "$translate" --checkpoint "$checkpoint" --score --threads 1 --batch-sentences 8 \
    --input "$work/run/data/dev.de" --reference "$work/run/data/dev.en" "$@" 2>>"$here/score.log" ||
    fail "scoring $checkpoint failed"
}
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

rm -rf "$here" && mkdir -p "$here"
case "$case_name" in
setup)
  rm -rf "$work/run" && mkdir -p "$work/run"
  here="$work/run"
  bash "$(dirname "$0")/toy_corpus.sh" "$here/corpus" 1000 3 11 20

  "$prep" --source "$here/corpus.de" --target "$here/corpus.en" --out-dir "$here/data" --vocab-size 48 \
    --dev-size 24 --test-size 24 >"$here/prep.log" 2>&1 || fail "tessera-prep failed"
  common=(--task corpus --data-dir "$here/data" --vocab-size 48 --d-model 32 --d-ff 64 --heads 4 --encoder-layers 2
          --decoder-layers 1 --max-len 64 --max-tokens 512 --warmup 10 --log-every 5 --valid-bleu-sentences 2
          --threads 1 --save-every 5 --out-dir "$here/run")
  "$train" "${common[@]}" --steps 10 >"$here/train-tp1.log" 2>&1 || fail "tessera-train (tp 1) failed"
  "${mpirun[@]}" -np 2 "$train" "${common[@]}" --steps 20 --tensor-parallel 2 --resume "$here/run/checkpoints" \
    >"$here/train-tp2.log" 2>&1 || fail "tessera-train (resumed, tp 2) failed"
  [ "$(ls -d "$root"/step-* | wc -l)" = 4 ] || fail "expected 4 checkpoints in $root"
  echo "PASS: checkpoints of steps 5, 10 (tp 1) and 15, 20 (tp 2) in $root"
  ;;

verify)
  expect_exit 0 verify "$ckpt" verify "$root"
  grep -q "^OK: 2 shards, [0-9]* tensors, [0-9]* bytes verified in .*step-00000020$" "$here/verify.log" ||
    fail "no OK line: $(cat "$here/verify.log")"
  expect_exit 0 inspect "$ckpt" inspect "$root/step-00000010"
  for want in "^step            10$" "^optimizer step  10 (Adam moments saved)$" "^written by      tp 1 x dp 1$" \
              "^  vocab-size = 48$" "^  model-tp0-of-1.safetensors  [0-9]* bytes  xxh3 [0-9a-f]\{16\}$" \
              "^  embedding  \[48, 32\]  F32  6144 bytes$" "^      model-tp0-of-1.safetensors  \[0:48, 0:32\]  xxh3 " \
              "^total: [0-9]* parameters ([0-9]* bytes of values, [0-9]* bytes of Adam moments)"; do
    grep -q "$want" "$here/inspect.log" || fail "inspect lacks /$want/"
  done
  expect_exit 0 inspect-json "$ckpt" inspect "$root" --json
  grep -q '"tensor_parallel": 2' "$here/inspect-json.log" || fail "inspect --json lacks the tp 2 writer"
  grep -q '"box": "\[24:48, 0:32\]"' "$here/inspect-json.log" || fail "inspect --json lacks the embedding's second block"

  # One flipped byte in the data of a shard: verify fails, naming the file and the tensor.
  cp -r "$root/step-00000020" "$here/damaged"
  shard="$here/damaged/model-tp1-of-2.safetensors"
  size=$(stat -c %s "$shard")
  # Flipped, not overwritten: a fixed byte leaves the shard intact whenever it was that byte already
  # (it was, once the trained values moved in their last bits).
  byte=$(dd if="$shard" bs=1 skip=$((size - 100)) count=1 status=none | od -An -tu1 | tr -d ' ')
  printf "\\x$(printf '%02x' $((byte ^ 0xff)))" | dd of="$shard" bs=1 seek=$((size - 100)) conv=notrunc status=none
  [ "$(dd if="$shard" bs=1 skip=$((size - 100)) count=1 status=none | od -An -tu1 | tr -d ' ')" != "$byte" ] \
    || fail "the byte at $((size - 100)) of $shard did not change"
  expect_exit 1 verify-damaged "$ckpt" verify "$here/damaged"
  grep -q "^problem: checkpoint shard .*damaged/model-tp1-of-2.safetensors is damaged: the bytes of tensor .* changed" \
    "$here/verify-damaged.log" || fail "verify does not name the damaged file and tensor: $(cat "$here/verify-damaged.log")"
  grep -q "^FAILED: 1 problem in " "$here/verify-damaged.log" || fail "no FAILED line"
  # ... and convert refuses it, naming the file.
  expect_exit 1 convert-damaged "$ckpt" convert "$here/damaged" --out "$here/never"
  grep -q "model-tp1-of-2.safetensors is damaged" "$here/convert-damaged.log" || fail "convert does not name the file"
  [ ! -e "$here/never" ] && [ ! -e "$here/never.staging" ] || fail "a failed convert left $here/never behind"
  # A missing shard.
  cp -r "$root/step-00000020" "$here/missing" && rm "$here/missing/model-tp0-of-2.safetensors"
  expect_exit 1 verify-missing "$ckpt" verify "$here/missing"
  grep -q "cannot open .*missing/model-tp0-of-2.safetensors" "$here/verify-missing.log" || fail "missing shard not named"
  expect_exit 1 verify-none "$ckpt" verify "$here/nowhere"
  grep -q "not a checkpoint: no manifest.json in .*nowhere" "$here/verify-none.log" || fail "no 'not a checkpoint'"

  # Bad usage: exit 2, naming the option.
  expect_exit 2 usage-none "$ckpt"
  expect_exit 2 usage-command "$ckpt" frobnicate "$root"
  grep -q "unknown command 'frobnicate'" "$here/usage-command.log" || fail "unknown command not named"
  expect_exit 2 usage-dir "$ckpt" verify
  grep -q "missing DIR" "$here/usage-dir.log" || fail "missing DIR not named"
  expect_exit 2 usage-out "$ckpt" convert "$root"
  grep -q "out" "$here/usage-out.log" || fail "missing --out not named"
  expect_exit 2 usage-dtype "$ckpt" convert "$root" --out "$here/x" --dtype f16
  grep -q -- "--dtype: 'f16' is not one of f32, bf16" "$here/usage-dtype.log" || fail "--dtype not named"
  expect_exit 2 usage-tp "$ckpt" convert "$root" --out "$here/x" --tensor-parallel 3
  grep -q -- "--tensor-parallel: 3 ranks do not divide --heads = 4" "$here/usage-tp.log" || fail "--tensor-parallel not named"
  expect_exit 2 usage-last "$ckpt" average --last 0 "$root"
  expect_exit 2 usage-export "$ckpt" export "$root" --out "$here/model.bin"
  expect_exit 1 average-too-many "$ckpt" average --last 9 "$root"
  grep -q -- "--last 9: .* holds only 4 complete checkpoints" "$here/average-too-many.log" || fail "--last 9 not named"
  echo "PASS"
  ;;

convert)
  expect_exit 0 to-tp1 "$ckpt" convert "$root" --out "$here/tp1"
  grep -q "step 20, tp 2) -> .*tp1: tp 1, f32, .* with optimizer state" "$here/to-tp1.log" || fail "$(cat "$here/to-tp1.log")"
  expect_exit 0 to-tp2 "$ckpt" convert "$here/tp1" --out "$here/tp2" --tensor-parallel 2
  expect_exit 0 to-tp1-again "$ckpt" convert "$here/tp2" --out "$here/tp1-again"
  # The round trips give back the very files: tp 2 as the training run wrote it, tp 1 as converted.
  for f in model-tp0-of-2.safetensors model-tp1-of-2.safetensors; do
    cmp "$here/tp2/$f" "$root/step-00000020/$f" || fail "tp 2 -> 1 -> 2 changed $f"
  done
  cmp "$here/tp1/model-tp0-of-1.safetensors" "$here/tp1-again/model-tp0-of-1.safetensors" || fail "tp 1 -> 2 -> 1 changed the shard"
  for d in tp1 tp2; do expect_exit 0 "verify-$d" "$ckpt" verify "$here/$d"; done
  # Converted checkpoints load and score exactly as the source, on one process and with tp 2.
  want=$(score "$root")
  [ "$(score "$here/tp1")" = "$want" ] || fail "tp 1 conversion scores differently"
  want2=$(score "$root" mpi --tensor-parallel 2)
  [ "$(score "$here/tp1" mpi --tensor-parallel 2)" = "$want2" ] || fail "tp 1 conversion scores differently at tp 2"

  # bf16: BF16 on disk, verified, loads and scores within bf16 rounding (1e-2 relative on the CE).
  expect_exit 0 to-bf16 "$ckpt" convert "$root" --out "$here/bf16" --dtype bf16 --tensor-parallel 4
  expect_exit 0 verify-bf16 "$ckpt" verify "$here/bf16"
  expect_exit 0 inspect-bf16 "$ckpt" inspect "$here/bf16"
  grep -q "^  embedding  \[48, 32\]  BF16  3072 bytes$" "$here/inspect-bf16.log" || fail "bf16 embedding not BF16"
  ! grep -q "  F32  " "$here/inspect-bf16.log" || fail "a bf16 conversion left F32 tensors"
  half=$(score "$here/bf16")
  awk -v a="$(field "$half" ce)" -v b="$(field "$want" ce)" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-2 * b && a != b) }' ||
    fail "bf16 scores $half, f32 $want"

  expect_exit 0 weights "$ckpt" convert "$root" --out "$here/weights" --weights-only
  expect_exit 0 inspect-weights "$ckpt" inspect "$here/weights"
  grep -q "^optimizer step  -1 (no optimizer state)$" "$here/inspect-weights.log" || fail "weights-only kept the optimizer"
  ! grep -q "adam\." "$here/inspect-weights.log" || fail "weights-only kept moments"
  echo "source $want"
  echo "bf16   $half"
  echo "PASS"
  ;;

average)
  cp -r "$root" "$here/checkpoints"
  expect_exit 0 average "$ckpt" average --last 3 "$here/checkpoints"
  grep -q "^averaged 3 checkpoints, steps 10, 15, 20 (.* parameters each) -> .*average-last-3-step-00000020 (step 20)$" \
    "$here/average.log" || fail "$(cat "$here/average.log")"
  out="$here/checkpoints/average-last-3-step-00000020"
  [ "$(cat "$here/checkpoints/latest")" = step-00000020 ] || fail "average moved latest"
  expect_exit 0 verify "$ckpt" verify "$out"
  expect_exit 0 inspect "$ckpt" inspect "$out"
  grep -q "^step            20$" "$here/inspect.log" && grep -q "^optimizer step  -1" "$here/inspect.log" ||
    fail "the average is not step 20 without optimizer"
  averaged=$(score "$out")
  [ "$(field "$averaged" sentences)" = 24 ] || fail "the average does not score: $averaged"
  [ "$averaged" != "$(score "$here/checkpoints")" ] || fail "the average scores as the newest checkpoint"
  # --last 1 is the newest checkpoint: the same export, byte for byte.
  expect_exit 0 average-1 "$ckpt" average --last 1 "$here/checkpoints" --out "$here/last1"
  expect_exit 0 export-last1 "$ckpt" export "$here/last1" --out "$here/last1.safetensors"
  expect_exit 0 export-newest "$ckpt" export "$here/checkpoints" --out "$here/newest.safetensors"
  cmp "$here/last1.safetensors" "$here/newest.safetensors" || fail "--last 1 differs from the newest checkpoint"
  echo "average of steps 10, 15, 20: $averaged"
  echo "PASS"
  ;;

export_python)
  python3 -c "import safetensors, numpy" 2>/dev/null || { echo "SKIP: python3 cannot import safetensors and numpy"; exit 77; }
  expect_exit 0 export "$ckpt" export "$root" --out "$here/model.safetensors"
  grep -q "^exported .*step-00000020 (step 20) -> .*model.safetensors: .* tensors, .* parameters, f32" "$here/export.log" ||
    fail "$(cat "$here/export.log")"
  python3 "$source_dir/tests/e2e/ckpt_export_check.py" "$here/model.safetensors" "$root" || fail "export check failed"
  # An average, checked against numpy's mean of the three checkpoints (tp 1 and tp 2 blocks).
  expect_exit 0 average "$ckpt" average --last 3 "$root" --out "$here/average"
  expect_exit 0 export-average "$ckpt" export "$here/average" --out "$here/average.safetensors"
  python3 "$source_dir/tests/e2e/ckpt_export_check.py" "$here/average.safetensors" "$here/average" \
    --mean-of "$root/step-00000010" "$root/step-00000015" "$root/step-00000020" || fail "average check failed"
  echo "PASS"
  ;;

pytorch)
  python3 -c "import torch, safetensors" 2>/dev/null || { echo "SKIP: python3 cannot import torch and safetensors"; exit 77; }
  expect_exit 0 reference "$reference" "$root" "$here/reference.json"
  expect_exit 0 export "$ckpt" export "$root" --out "$here/model.safetensors"
  python3 "$source_dir/tools/load_into_pytorch.py" "$here/model.safetensors" --check "$here/reference.json" ||
    fail "PyTorch log-probabilities differ (post-LN, ReLU)"
  # Pre-LN with GELU: final LayerNorms and the tanh GELU (a few steps of the reverse task).
  "$train" --config "$source_dir/configs/tiny.cfg" --pre-ln --activation gelu --d-model 32 --d-ff 64 --steps 3 \
    --batch-sentences 8 --threads 1 --out-dir "$here/preln" >"$here/train-preln.log" 2>&1 || fail "pre-LN training failed"
  expect_exit 0 reference-preln "$reference" "$here/preln/checkpoints" "$here/reference-preln.json"
  expect_exit 0 export-preln "$ckpt" export "$here/preln/checkpoints" --out "$here/preln.safetensors"
  python3 "$source_dir/tools/load_into_pytorch.py" "$here/preln.safetensors" --check "$here/reference-preln.json" ||
    fail "PyTorch log-probabilities differ (pre-LN, GELU)"
  echo "PASS"
  ;;

*)
  echo "unknown case $case_name"; exit 2
  ;;
esac

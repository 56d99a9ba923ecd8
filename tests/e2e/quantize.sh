#!/usr/bin/env bash
# tessera-translate --quantize int8 end to end: a made-up German->English corpus (word by word over
# a small lexicon) goes through tessera-prep, tessera-train runs 300 steps on it, and the checkpoint
# translates the 40 test sentences with beam 4:
#   - int8 on one process against f32 on one process: at least 30 of 40 translations identical
#     (the int8 products round every activation to 7 bits, which may flip a near tie of the beam);
#   - int8 under mpirun -np 2 --tensor-parallel 2 against int8 on one process: at least 36 of 40
#     identical. Column-parallel shards quantise exactly as their slice of the whole weight (one
#     scale per output channel), but a row-parallel shard quantises its half of each activation row
#     with that half's own range, so the partial sums differ from one process's by the rounding of
#     7-bit steps, and the all-reduce adds in another order: ties may flip, not the bulk;
#   - --quantize int8 --device cuda and --quantize int4 are errors that name the option.
# Measured here: 40 of 40 in both comparisons (BLEU 98.18 for f32, int8 and int8 under tp 2).
# usage: quantize.sh MPIRUN... -- TESSERA_PREP TESSERA_TRAIN TESSERA_TRANSLATE WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
prep="$1" train="$2" translate="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

bash "$(dirname "$0")/toy_corpus.sh" "$work/corpus" 3000 4 11 16
"$prep" --source "$work/corpus.de" --target "$work/corpus.en" --out-dir "$work/data" --vocab-size 64 \
  --dev-size 40 --test-size 40 >"$work/prep.log" 2>&1 || fail "tessera-prep failed"
# Pre-LN without dropout learns the word-by-word task in 300 steps (dev BLEU 97 measured), so the
# translations are a model's, not the repetitions of an untrained one, where every step is a tie.
"$train" --task corpus --data-dir "$work/data" --vocab-size 64 --d-model 64 --d-ff 128 --heads 4 --encoder-layers 2 \
  --decoder-layers 2 --pre-ln --dropout 0 --max-len 64 --max-tokens 1024 --warmup 100 --steps 300 --log-every 100 \
  --valid-every 300 --valid-bleu-sentences 4 --threads 1 --out-dir "$work/run" >"$work/train.log" 2>&1 ||
  fail "tessera-train failed"

translate() {  # translate NAME MPIRUN-PREFIX... -- ARGS...: writes $work/NAME.hyp
  local name=$1; shift
  local launcher=()
  while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  shift
  "${launcher[@]}" "$translate" --checkpoint "$work/run/checkpoints" --beam 4 --threads 1 --batch-sentences 8 \
    --input "$work/data/test.de" --reference "$work/data/test.en" --output "$work/$name.hyp" "$@" \
    2>"$work/$name.log" || fail "$name: translation failed"
  [ "$(wc -l <"$work/$name.hyp")" = 40 ] || fail "$name: expected 40 translations"
}
same_lines() { paste -d '\t' "$work/$1.hyp" "$work/$2.hyp" | awk -F'\t' '$1 == $2' | wc -l; }
bleu() { grep -o 'BLEU = [0-9.]*' "$work/$1.log"; }

translate f32 --
translate int8 -- --quantize int8
# Per encoder layer q, k, v, out, ffn in and out; per decoder layer both attentions and the ffn;
# and the output projection: 2 x 6 + 2 x 10 + 1.
grep -q "quantised 33 weights" "$work/int8.log" || fail "int8: expected 33 quantised weights in the log"
translate int8_tp2 "${mpirun[@]}" -np 2 -- --quantize int8 --tensor-parallel 2
echo "f32: $(bleu f32); int8: $(bleu int8); int8 tp2: $(bleu int8_tp2)"
n=$(same_lines f32 int8)
echo "int8 = f32 on $n of 40 sentences"
[ "$n" -ge 30 ] || fail "int8 translations equal f32's on only $n of 40 sentences"
n=$(same_lines int8 int8_tp2)
echo "int8 tp2 = int8 on one process on $n of 40 sentences"
[ "$n" -ge 36 ] || fail "int8 under --tensor-parallel 2 equals one process on only $n of 40 sentences"

if "$translate" --checkpoint "$work/run/checkpoints" --quantize int8 --device cuda --input "$work/data/test.de" \
  >/dev/null 2>"$work/cuda.log"; then
  fail "--quantize int8 --device cuda was accepted"
fi
grep -q -- "--quantize int8: int8 products run on the CPU only" "$work/cuda.log" ||
  fail "the int8-on-cuda error does not say so: $(cat "$work/cuda.log")"
if "$translate" --checkpoint "$work/run/checkpoints" --quantize int4 --input "$work/data/test.de" \
  >/dev/null 2>"$work/int4.log"; then
  fail "--quantize int4 was accepted"
fi
grep -q -- "--quantize: expected none or int8, got 'int4'" "$work/int4.log" ||
  fail "the unknown --quantize error does not say so: $(cat "$work/int4.log")"
echo "PASS"

#!/usr/bin/env bash
# tessera-translate --score end to end, on text: a made-up German->English corpus (word by word
# over a small lexicon) goes through tessera-prep (SentencePiece, dev split), tessera-train runs 30
# steps on it and validates, and the checkpoint scores dev.de -> dev.en.
#   - The count of target tokens is the dev set's SentencePiece pieces (prep_report.json) plus one
#     eos per sentence, and the label-smoothed CE per token is the dev loss of valid.tsv (the
#     training code's Trainer::evaluate on the dataset tessera-prep encoded): text is encoded and
#     given bos/eos exactly as training data is.
#   - ce = -logprob / target_tokens.
#   - tp=2 and dp=2 under mpirun print the same numbers as one process, within 1e-5 relative.
#   - Source and target files of different line counts are an error naming both and their counts.
# usage: score.sh MPIRUN... -- TESSERA_PREP TESSERA_TRAIN TESSERA_TRANSLATE WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
prep="$1" train="$2" translate="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

# 2000 pairs of 4-9 words, each English word the translation of the German one.
bash "$(dirname "$0")/toy_corpus.sh" "$work/corpus" 2000 4 7 24
"$prep" --source "$work/corpus.de" --target "$work/corpus.en" --out-dir "$work/data" --vocab-size 64 \
  --dev-size 40 --test-size 40 >"$work/prep.log" 2>&1 || fail "tessera-prep failed"
"$train" --task corpus --data-dir "$work/data" --vocab-size 64 --d-model 32 --d-ff 64 --heads 4 --encoder-layers 1 \
  --decoder-layers 1 --max-len 64 --max-tokens 1024 --warmup 10 --steps 30 --log-every 10 --valid-every 30 \
  --valid-bleu-sentences 4 --threads 1 --out-dir "$work/run" >"$work/train.log" 2>&1 || fail "tessera-train failed"

score() {  # score LOGNAME MPIRUN-PREFIX... -- ARGS...: prints the score line
  local name=$1; shift
  local launcher=()
  while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  shift
  "${launcher[@]}" "$translate" --checkpoint "$work/run/checkpoints" --score --threads 1 --batch-sentences 8 \
    --input "$work/data/dev.de" --reference "$work/data/dev.en" "$@" 2>"$work/$name.log" || fail "$name: scoring failed"
}
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
# near A B RTOL: |A - B| <= RTOL * (1 + |B|)
near() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= r * (1 + m)) }'; }

one=$(score one --)
echo "one process: $one"
[ "$(wc -l <<<"$one")" = 1 ] || fail "expected one line on stdout, got: $one"
grep -q '^score: 40 sentence pairs' "$work/one.log" || fail "no human summary on stderr"

pieces=$(awk '/"dev": \{/ {f = 1} f && /"target_tokens"/ {gsub(/[^0-9]/, ""); print; exit}' "$work/data/prep_report.json")
[ "$(field "$one" sentences)" = 40 ] || fail "sentences: want 40 in: $one"
[ "$(field "$one" target_tokens)" = $((pieces + 40)) ] || fail "target_tokens: want $pieces pieces + 40 eos in: $one"
[ "$(field "$one" label_smoothing)" = 0.1 ] || fail "label_smoothing: want the trained 0.1 in: $one"
# valid.tsv: step minutes loss ppl bleu, the loss from Trainer::evaluate on dev.{src,tgt}.
valid_loss=$(awk -F'\t' 'NR == 2 {print $3}' "$work/run/valid.tsv")
near "$(field "$one" label_smoothed_ce)" "$valid_loss" 2e-5 ||
  fail "label_smoothed_ce $(field "$one" label_smoothed_ce) is not the training dev loss $valid_loss"
near "$(field "$one" ce)" "$(awk -v l="$(field "$one" logprob)" -v t="$(field "$one" target_tokens)" 'BEGIN { printf "%.17g", -l / t }')" 1e-15 ||
  fail "ce is not -logprob / target_tokens in: $one"

for layout in "tp2 --tensor-parallel 2" "dp2 --data-parallel 2"; do
  set -- $layout
  got=$(score "$1" "${mpirun[@]}" -np 2 -- "$2" 2)
  echo "$1: $got"
  for k in sentences target_tokens label_smoothing; do
    [ "$(field "$got" $k)" = "$(field "$one" $k)" ] || fail "$1: $k differs from one process: $got"
  done
  for k in label_smoothed_ce ce logprob; do
    near "$(field "$got" $k)" "$(field "$one" $k)" 1e-5 || fail "$1: $k differs from one process beyond 1e-5: $got"
  done
done

head -n 39 "$work/data/dev.en" >"$work/short.en"
if "$translate" --checkpoint "$work/run/checkpoints" --score --input "$work/data/dev.de" --reference "$work/short.en" \
  >/dev/null 2>"$work/mismatch.log"; then
  fail "files of 40 and 39 lines were scored"
fi
grep -q "dev.de' has 40 lines but --reference '.*short.en' has 39" "$work/mismatch.log" ||
  fail "the line-count error does not name both files and counts: $(cat "$work/mismatch.log")"
echo "PASS"

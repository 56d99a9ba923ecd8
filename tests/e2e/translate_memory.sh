#!/usr/bin/env bash
# tessera-translate's memory follows the model and the batch, not the length of the input file.
# A toy model decodes, with beam 4 and 32 sentences per batch:
#   short: one batch, 32 copies of a sentence of 23 words;
#   long:  20 batches, 32 copies each of its prefixes of 4, 5, ..., 23 words (640 sentences).
# The shapes drift from batch to batch, and long's largest batch is short's. Long's peak resident
# memory may exceed short's by at most 20% + 8 MiB. Before the host allocator bounded its idle
# blocks, the blocks of every shape seen stayed cached and long took 45% more than short.
# usage: translate_memory.sh TESSERA_PREP TESSERA_TRAIN TESSERA_TRANSLATE WORKDIR
set -euo pipefail
prep="$1" train="$2" translate="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

bash "$(dirname "$0")/toy_corpus.sh" "$work/corpus" 600 4 11 24
"$prep" --source "$work/corpus.de" --target "$work/corpus.en" --out-dir "$work/data" --vocab-size 64 \
  --dev-size 40 --test-size 40 >"$work/prep.log" 2>&1 || fail "tessera-prep failed"
# d_model 128, 4 heads: with 32 sentences x beam 4 a cache position of one layer is 64 KiB, so the
# caches are the large blocks the host allocator keeps.
"$train" --task corpus --data-dir "$work/data" --vocab-size 64 --d-model 128 --d-ff 256 --heads 4 \
  --encoder-layers 2 --decoder-layers 2 --max-len 64 --max-tokens 1024 --warmup 10 --steps 10 --log-every 10 \
  --valid-every 0 --threads 1 --out-dir "$work/run" >"$work/train.log" 2>&1 || fail "tessera-train failed"

bash "$(dirname "$0")/toy_corpus.sh" "$work/long_sentence" 1 24 5 24
read -ra words <"$work/long_sentence.de"
for n in $(seq 4 23); do for i in $(seq 32); do echo "${words[*]:0:n}"; done; done >"$work/long.de"
tail -n 32 "$work/long.de" >"$work/short.de"
peak_kib() {  # peak_kib NAME INPUT: translates INPUT, prints the peak resident KiB
  /usr/bin/time -f "%M" -o "$work/$1.rss" "$translate" --checkpoint "$work/run/checkpoints" --threads 1 --beam 4 \
    --batch-sentences 32 --input "$2" --output "$work/$1.hyp" 2>"$work/$1.log" || fail "$1: translation failed"
  cat "$work/$1.rss"
}
short=$(peak_kib short "$work/short.de")
long=$(peak_kib long "$work/long.de")
tail -n 32 "$work/long.hyp" | cmp -s - "$work/short.hyp" || fail "the same batch translated differently"
echo "peak resident memory: 32 sentences $short KiB, 640 sentences $long KiB"
[ "$long" -le $((short * 120 / 100 + 8192)) ] || fail "640 sentences took $long KiB, more than 32 sentences' $short KiB + 20% + 8 MiB"
echo PASS

#!/usr/bin/env bash
# tessera-bench --decode and tools/export_ctranslate2.py end to end, on a model trained here. One
# case per ctest test:
#   setup  a made-up German->English corpus (word by word over a small lexicon) through
#          tessera-prep, and tessera-train on one process until it translates it (greedy dev BLEU ~50)
#   table  tessera-bench --decode without the anchor on 12 test sentences: the markdown table has
#          one row per precision x beam x threads with numbers in every Tessera f32 cell, the int8
#          rows either numbers or "n/a (tessera-translate has no --quantize)", the CTranslate2 cells
#          say why they are empty; the translations the bench timed are byte for byte those of
#          tessera-translate run by hand with the same settings; a missing checkpoint or input is an
#          error naming it
#   ct2    tools/export_ctranslate2.py converts the checkpoint, and CTranslate2's greedy decodes of
#          the test set equal tessera-translate's, sentence for sentence (through the bench, which
#          feeds both systems the same SentencePiece pieces); a vocabulary of the wrong size is
#          refused naming --spm. Skipped (77) without Python's ctranslate2, torch or safetensors.
# usage: decode_bench.sh CASE PREP TRAIN TRANSLATE CKPT BENCH SOURCE_DIR WORKDIR
set -euo pipefail
case_name="$1" prep="$2" train="$3" translate="$4" ckpt="$5" bench="$6" source_dir="$7" work="$8"
run="$work/run"  # the setup case's corpus and checkpoints
here="$work/$case_name"
fail() { echo "FAIL: $*"; for f in "$here"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }
checkpoint="$run/train/checkpoints"

case "$case_name" in
setup)
  rm -rf "$run" && mkdir -p "$run"
  here="$run"
  bash "$(dirname "$0")/toy_corpus.sh" "$run/corpus" 3000 3 5 12
  "$prep" --source "$run/corpus.de" --target "$run/corpus.en" --out-dir "$run/data" --vocab-size 40 \
    --dev-size 24 --test-size 24 >"$run/prep.log" 2>&1 || fail "tessera-prep failed"
  "$train" --task corpus --data-dir "$run/data" --vocab-size 40 --d-model 32 --d-ff 64 --heads 4 \
    --encoder-layers 2 --decoder-layers 2 --pre-ln --max-len 64 --max-tokens 1024 --warmup 100 --lr-factor 2 \
    --steps 1200 --log-every 200 --valid-every 1200 --valid-bleu-sentences 24 --threads 1 --save-every 1200 \
    --out-dir "$run/train" >"$run/train.log" 2>&1 || fail "tessera-train failed"
  [ -f "$checkpoint/latest" ] || fail "no checkpoint in $checkpoint"
  echo "PASS: trained $(cat "$checkpoint/latest") in $checkpoint; $(tail -1 "$run/train/valid.tsv")"
  ;;

table)
  rm -rf "$here" && mkdir -p "$here"
  "$bench" --decode --checkpoint "$checkpoint" --input "$run/data/test.de" --sentences 12 --beam 1 3 \
    --decode-threads 1 --batch-sentences 5 --no-anchor --work-dir "$here/work" >"$here/table.md" 2>"$here/bench.log" ||
    fail "tessera-bench --decode failed: $(tail -3 "$here/bench.log")"
  cat "$here/table.md"
  grep -q '^| precision | beam | threads | Tessera sent/s | Tessera tok/s | Tessera wall s | Tessera peak MiB ' \
    "$here/table.md" || fail "no table header"
  grep -q "first 12 lines of .*test.de" "$here/table.md" || fail "the table does not say what it decoded"
  rows=$(grep -c '^| \(f32\|int8\) | ' "$here/table.md" || true)
  [ "$rows" = 4 ] || fail "expected 4 rows (f32, int8 x beam 1, 3), got $rows"
  for beam in 1 3; do
    row=$(grep "^| f32 | $beam | 1 | " "$here/table.md") || fail "no f32 row for beam $beam"
    # sentences/s, tokens/s, wall s, peak MiB: positive numbers; CTranslate2: the reason it did not run.
    awk -F' [|] ' '{ for (i = 4; i <= 7; ++i) if (!($i + 0 > 0)) exit 1 }' <<<"$row" ||
      fail "f32 beam $beam: Tessera cells are not positive numbers: $row"
    grep -q '| skipped: --no-anchor | - |' <<<"$row" || fail "f32 beam $beam: CTranslate2 cells do not say why: $row"
    int8=$(grep "^| int8 | $beam | 1 | " "$here/table.md") || fail "no int8 row for beam $beam"
    grep -q '| n/a (tessera-translate has no --quantize) |' <<<"$int8" ||
      awk -F' [|] ' '{ for (i = 4; i <= 7; ++i) if (!($i + 0 > 0)) exit 1 }' <<<"$int8" ||
      fail "int8 beam $beam: neither numbers nor n/a: $int8"
    # What the bench timed is what tessera-translate prints with the same settings.
    head -12 "$run/data/test.de" >"$here/source.txt"
    "$translate" --checkpoint "$checkpoint" --input "$here/source.txt" --beam "$beam" --threads 1 \
      --batch-sentences 5 --length-penalty 0.6 --max-len-extra 50 >"$here/by-hand-$beam.txt" 2>"$here/translate.log" ||
      fail "tessera-translate failed"
    cmp -s "$here/by-hand-$beam.txt" "$here/work/tessera-f32-beam$beam-threads1.txt" ||
      fail "beam $beam: the bench's translations differ from tessera-translate's with the same settings"
  done
  # Errors name what is at fault.
  got=0
  "$bench" --decode --checkpoint "$here/no-such-dir" --no-anchor >/dev/null 2>"$here/bad.log" || got=$?
  [ "$got" = 1 ] && grep -q "no-such-dir" "$here/bad.log" || fail "a missing checkpoint: exit $got, $(cat "$here/bad.log")"
  got=0
  "$bench" --decode --checkpoint "$checkpoint" --input "$here/no-such-file" --no-anchor >/dev/null 2>"$here/bad.log" || got=$?
  [ "$got" = 1 ] && grep -q -- "--input: cannot open '.*no-such-file'" "$here/bad.log" ||
    fail "a missing input: exit $got, $(cat "$here/bad.log")"
  echo "PASS: the table has 4 rows, and the bench decoded what tessera-translate decodes"
  ;;

ct2)
  rm -rf "$here" && mkdir -p "$here"
  for module in ctranslate2 torch safetensors; do
    if ! python3 -c "import $module" >/dev/null 2>&1; then
      echo "SKIP: python3 cannot import $module (needed by tools/export_ctranslate2.py)"
      exit 77
    fi
  done
  python3 "$source_dir/tools/export_ctranslate2.py" "$checkpoint" "$here/ct2-model" --spm "$run/data/spm.model" \
    --tessera-ckpt "$ckpt" >"$here/convert.log" 2>&1 || fail "export_ctranslate2.py failed"
  cat "$here/convert.log"
  for f in model.bin config.json shared_vocabulary.json; do [ -f "$here/ct2-model/$f" ] || fail "no $f"; done
  n=$(wc -l <"$run/data/test.de")
  "$bench" --decode --checkpoint "$checkpoint" --input "$run/data/test.de" --sentences "$n" --beam 1 \
    --decode-threads 1 --no-int8 --ct2-model "$here/ct2-model" --tools-dir "$source_dir/tools" \
    --work-dir "$here/work" >"$here/table.md" 2>"$here/bench.log" || fail "tessera-bench --decode failed"
  cat "$here/table.md"
  tessera="$here/work/tessera-f32-beam1-threads1.txt" ct2="$here/work/ct2-f32-beam1-threads1.txt"
  [ "$(wc -l <"$ct2")" = "$n" ] || fail "CTranslate2 wrote $(wc -l <"$ct2") translations for $n sentences"
  [ "$(sort -u "$tessera" | wc -l)" -gt 1 ] || fail "the model is not trained: every translation is the same"
  diff "$tessera" "$ct2" >"$here/diff.log" || fail "greedy decodes differ (< tessera-translate, > CTranslate2)"
  grep -q "^| f32 | 1 | 1 | .* | $n/$n |$" "$here/table.md" || fail "the table does not say $n/$n the same"
  # A vocabulary that does not fit the model is refused, naming --spm.
  printf 'not a model' >"$here/bad.model"
  got=0
  python3 "$source_dir/tools/export_ctranslate2.py" "$checkpoint" "$here/bad" --spm "$here/bad.model" \
    --tessera-ckpt "$ckpt" >"$here/bad.log" 2>&1 || got=$?
  [ "$got" != 0 ] && grep -q "bad.model" "$here/bad.log" || fail "a bad --spm: exit $got, $(cat "$here/bad.log")"
  echo "PASS: CTranslate2's greedy decodes of the converted model equal tessera-translate's on $n/$n sentences"
  ;;

*)
  echo "unknown case $case_name"
  exit 2
  ;;
esac

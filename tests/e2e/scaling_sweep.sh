#!/usr/bin/env bash
# A tiny strong-scaling sweep through launch/scaling.sh (layouts 1x1, 1x2, 2x1; 6 steps, 2 of
# warm-up; small collective benchmarks), then checks what it wrote: a metrics.jsonl per layout,
# the benchmark files, and a scaling.md whose table has one row per layout with numbers in every
# measured and predicted column and the 1-rank row at speed-up 1.00. Exit 77 (skipped) without
# python3.
#   scaling_sweep.sh MPIRUN... -- TESSERA_TRAIN TESSERA_BENCH_COLLECTIVES SOURCE_DIR WORK_DIR
set -euo pipefail
launcher=()
while [ "$1" != -- ]; do launcher+=("$1"); shift; done
shift
train="$1" bench="$2" src="$3" work="$4"
command -v python3 >/dev/null || { echo "skipped: no python3 for tools/scaling_report.py"; exit 77; }
rm -rf "$work"
mkdir -p "$work"

bash "$src/launch/scaling.sh" --config "$src/configs/tiny.cfg" --layouts "1x1 1x2 2x1" --mode strong \
     --steps 6 --warmup 2 --train "$train" --bench "$bench" --launcher "${launcher[*]}" \
     --bench-max-bytes 262144 --bench-repeats 1 --batch 16 --out "$work/sweep"

fail() { echo "FAIL: $*" >&2; exit 1; }
for layout in tp1-dp1 tp1-dp2 tp2-dp1; do
  [ -s "$work/sweep/strong-$layout/metrics.jsonl" ] || fail "no metrics.jsonl for $layout"
done
[ -s "$work/sweep/bench/p2-w2.txt" ] || fail "no collective benchmark of 2 ranks"
report="$work/sweep/scaling.md"
[ -s "$report" ] || fail "no $report"
python3 - "$report" <<'PY' || fail "the report's table is not complete (above)"
import re, sys
rows = [line.strip().strip("|").split("|") for line in open(sys.argv[1]) if re.match(r"\| \d+x\d+ \|", line)]
rows = [[c.strip() for c in r] for r in rows if len(r) == 14]  # the layout tables (not the fits)
number = re.compile(r"^[-+]?\d+(\.\d+)?%?( \(cal\.\))?$")
layouts = sorted(r[0] for r in rows)
ok = layouts == ["1x1", "1x2", "2x1"]
for r in rows:
    bad = [c for c in r[1:] if not number.match(c)]
    if bad:
        print("row %s: not a number: %s" % (r[0], bad))
        ok = False
one = [r for r in rows if r[0] == "1x1"]
if not one or one[0][3] != "1.00" or one[0][4] != "100%" or "(cal.)" not in one[0][12]:
    print("the 1-rank row is not the reference:", one)
    ok = False
print("layouts:", layouts)
sys.exit(0 if ok else 1)
PY
grep -Eq '^[|] all_reduce [|] 2 [|] 2 [|]' "$report" || fail "no all_reduce fit in $report"
echo "scaling sweep: report with 3 layouts and the model's predictions in $report"

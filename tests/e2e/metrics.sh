#!/usr/bin/env bash
# What a run reports about itself (docs/metrics.md), at tp 2 x dp 2 with world rank 3 made slow
# (TESSERA_TEST_SLOW_RANK=3:0.05, 50 ms more per step):
# - metrics.jsonl holds the start record with the layout, a step record every --log-every steps
#   whose time split adds up to its step time, the validation and the end;
# - the straggler report names rank 3 in the log and in metrics.jsonl, and never another rank;
# - resumed with --resume auto to a later --steps, metrics.jsonl continues: every logged step
#   once, a start record per run;
# - TensorBoard's own loader reads the curves of both runs (when Python's tensorboard is here).
# usage: metrics.sh MPIRUN... -- TESSERA_TRAIN CONFIG TOOLS_DIR WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" tools="$3" work="$4"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read metrics.jsonl"; exit 77; }
run() {  # run STEPS
  TESSERA_TEST_SLOW_RANK=3:0.05 "${mpirun[@]}" -np 4 "$train" --config "$config" --tensor-parallel 2 \
    --data-parallel 2 --threads 1 --steps "$1" --log-every 10 --straggler-every 10 --resume auto --out-dir "$work/run"
}
run 30 >"$work/first.log" 2>&1 || { cat "$work/first.log"; fail "the first run failed"; }
grep -q "straggler: rank 3 on " "$work/first.log" || { cat "$work/first.log"; fail "no straggler report naming rank 3"; }
! grep "straggler: rank [012] " "$work/first.log" || fail "a rank that was not slowed was named"
grep -qE "step 30 .* tok/s [0-9]+ .*% of peak .*eta " "$work/first.log" || fail "no progress line with speed and ETA"
run 50 >"$work/second.log" 2>&1 || { cat "$work/second.log"; fail "the resumed run failed"; }
grep -q "resumed from .* at step 30" "$work/second.log" || fail "the second run did not resume at step 30"

python3 - "$work/run/metrics.jsonl" <<'PY' || fail "metrics.jsonl is not right"
import json, math, sys
records = [json.loads(line) for line in open(sys.argv[1])]
events = [r["event"] for r in records]
starts = [r for r in records if r["event"] == "start"]
assert [s["step"] for s in starts] == [0, 30], starts
for s in starts:
    assert (s["world"], s["tp"], s["dp"], s["threads"]) == (4, 2, 2, 1), s
    assert s["peak_flops_per_rank"] > 0 and s["parameters"] > 0 and s["config"]["tensor-parallel"] == "2", s
steps = [r for r in records if r["event"] == "step"]
assert [r["step"] for r in steps] == [10, 20, 30, 40, 50], [r["step"] for r in steps]
for r in steps:
    parts = r["compute_s"] + r["comm_exposed_s"] + r["data_s"] + r["checkpoint_s"]
    assert math.isclose(parts, r["step_s"], rel_tol=1e-9), (parts, r)
    assert r["comm_exposed_s"] > 0.03, r  # rank 0 waits in the collectives for rank 3's 50 ms
    assert r["tokens_per_s"] > 0 and 0 < r["peak_fraction"] < 2 and r["host_peak_rss_bytes"] > 1e6, r
    assert r["steps"] == 10 and math.isfinite(r["loss"]) and r["eta_s"] >= 0, r
    assert math.isclose(r["ppl"], math.exp(r["loss"]), rel_tol=1e-12), r
assert steps[-1]["eta_s"] == 0, steps[-1]
stragglers = [r for r in records if r["event"] == "straggler"]
assert stragglers and all(r["rank"] == 3 and r["percent_slower"] > 20 for r in stragglers), stragglers
valid = [r["step"] for r in records if r["event"] == "valid"]
ends = [(r["step"], r["reason"]) for r in records if r["event"] == "end"]
assert valid == [30, 50] and ends == [(30, "finished"), (50, "finished")], (valid, ends)
print(f"metrics.jsonl: {len(records)} records, {len(stragglers)} straggler reports naming rank 3")
PY
echo "straggler line: $(grep -m1 'straggler: rank 3' "$work/first.log" | sed 's/^\[[^]]*\] //')"

rc=0
python3 "$tools/read_tensorboard.py" "$work/run" >"$work/tensorboard.tsv" 2>&1 || rc=$?
if [ "$rc" = 77 ]; then
  echo "TensorBoard check skipped: $(cat "$work/tensorboard.tsv")"
else
  [ "$rc" = 0 ] || { cat "$work/tensorboard.tsv"; fail "TensorBoard could not read the event files"; }
  [ "$(awk -F'\t' '$1 == "train/loss" {print $2}' "$work/tensorboard.tsv" | tr '\n' ' ')" = "10 20 30 40 50 " ] ||
    { cat "$work/tensorboard.tsv"; fail "TensorBoard's train/loss is not steps 10..50 once each"; }
  echo "TensorBoard reads train/loss at steps 10..50"
fi

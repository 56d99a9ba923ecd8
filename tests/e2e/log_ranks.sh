#!/usr/bin/env bash
# The layout table and --log-ranks, under mpirun -np 2 (dp 2, tiny config, 1 step):
#   - world rank 0 prints the table once and saves it as <out-dir>/layout.txt: one row per rank
#     with its host, local rank, tp and dp rank, threads and CPUs;
#   - by default only rank 0 logs info lines; with --log-ranks all rank 1 logs too, prefixed r1;
#   - --log-ranks with another value is an error naming the option.
# usage: log_ranks.sh MPIRUN... -- TESSERA_TRAIN WORKDIR
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" work="$2"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
run() {  # run NAME ARGS...
  local name=$1; shift
  "${mpirun[@]}" -np 2 "$train" --config "$(dirname "$0")/../../configs/tiny.cfg" --data-parallel 2 --steps 1 \
    --threads 1 --valid-every 0 --out-dir "$work/$name" "$@" >"$work/$name.log" 2>&1
}
run default || fail "the default run failed"
grep -q "r0 info\] layout:" "$work/default.log" || fail "no layout table in the log"
[ "$(grep -c "r0 info\] layout:" "$work/default.log")" = 1 ] || fail "the layout table is printed more than once"
host=$(hostname)
awk -v host="$host" 'NR == 1 {ok = ($1 == "world" && $2 == "host")} NR == 2 {ok = ok && $1 == 0 && $2 == host && $4 == 0 && $5 == 0 && $6 == 1}
     NR == 3 {ok = ok && $1 == 1 && $2 == host && $4 == 0 && $5 == 1 && $6 == 1} END {exit !(ok && NR == 3)}' \
  "$work/default/layout.txt" || { cat "$work/default/layout.txt"; fail "layout.txt is not world/host/local/tp/dp/threads for 2 ranks"; }
! grep -q "r1 info\]" "$work/default.log" || fail "rank 1 logged info lines without --log-ranks all"

run all --log-ranks all || fail "the --log-ranks all run failed"
grep -q "r1 info\] step 1 " "$work/all.log" || fail "rank 1 did not log its step with --log-ranks all"
grep -q "r0 info\] step 1 " "$work/all.log" || fail "rank 0 did not log its step with --log-ranks all"

if run bad --log-ranks some; then fail "--log-ranks some was accepted"; fi
grep -q -- "--log-ranks: must be 0 or all, got 'some'" "$work/bad.log" || fail "the error does not name --log-ranks"
echo PASS

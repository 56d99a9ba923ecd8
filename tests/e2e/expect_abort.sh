#!/usr/bin/env bash
# expect_abort.sh MAX_SECONDS PATTERN COMMAND...   (MAX_SECONDS a whole number)
# Passes when COMMAND exits non-zero within MAX_SECONDS and its output matches the extended
# regular expression PATTERN (an empty PATTERN matches anything). A hang is cut off at
# 2 * MAX_SECONDS so the test fails instead of blocking ctest.
set -u
max_s=$1 pattern=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start_ns=$(date +%s%N)
timeout --kill-after=5 $((2 * max_s)) "$@" >"$log" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
elapsed=$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))
fail() { echo "FAIL: $*"; echo "--- output ---"; cat "$log"; exit 1; }
echo "exit code $rc after ${elapsed} s (limit ${max_s} s)"
[ "$rc" -ne 0 ] || fail "the job exited 0; a missing or dead rank must fail it"
[ "$elapsed_ms" -le "$((max_s * 1000))" ] || fail "the job took ${elapsed} s, over ${max_s} s"
if [ -n "$pattern" ]; then
  grep -Eq "$pattern" "$log" || fail "no line matching: $pattern"
  grep -E "$pattern" "$log"
fi
echo PASS

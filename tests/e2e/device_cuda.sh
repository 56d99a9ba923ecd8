#!/usr/bin/env bash
# device_cuda.sh TRAIN BENCH CONFIG DIR
# `tessera-train --device cuda` either trains (a GPU is present) or stops at start-up with one
# clear error line and exit code 1 (no GPU, no driver, or a build without the CUDA backend): never
# a crash (signal, abort, core dump) and never a step on the CPU instead.
set -u
train=$1 bench=$2 config=$3 dir=$4
rm -rf "$dir" && mkdir -p "$dir"
fail() { echo "FAIL: $*"; echo "--- output ---"; cat "$dir/log"; exit 1; }
"$train" --config "$config" --device cuda --steps 3 --log-every 1 --threads 1 >"$dir/log" 2>&1
rc=$?
if "$bench" --device cuda --device-info >/dev/null 2>&1; then
  [ "$rc" -eq 0 ] || fail "a GPU is present but training on it exited $rc"
  grep -q "device cuda:" "$dir/log" || fail "the run does not say which GPU it used"
  grep -q "step 3 " "$dir/log" || fail "no step 3 in the log"
  echo "PASS: trained 3 steps on the GPU"
  exit 0
fi
[ "$rc" -eq 1 ] || fail "without a usable GPU the exit code must be 1 (a start-up error), got $rc"
grep -Eq "error: .*--device cuda: " "$dir/log" || fail "no error line naming --device cuda"
grep -q "step 1 " "$dir/log" && fail "it trained although --device cuda could not be honoured"
grep -E "error" "$dir/log"
echo "PASS: a clear start-up error"

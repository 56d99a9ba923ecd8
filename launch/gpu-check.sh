#!/usr/bin/env bash
# Everything that needs a GPU, in one command for the first GPU machine that appears:
#   1. build with the CUDA backend (TESSERA_CUDA=ON, warnings are errors) into build-gpu/;
#   2. find a GPU (tessera-bench --device cuda --device-info); without one, say "no GPU" and exit 3;
#   3. the whole test suite, whose /cuda test instances now run instead of skipping;
#   4. the CUDA test instances under compute-sanitizer: memcheck, racecheck, initcheck;
#   5. the tiny model trained 200 steps on the CPU and on the GPU from the same seed, loss curves
#      compared: step 1 within 1e-4 relative, the mean of steps 181-200 within 3% relative
#      (the same math in f32; summation orders differ, so the curves drift apart slowly);
#   6. tessera-bench --device cuda for small, base and big (tokens/s, model GFLOP/s, % of the
#      measured cuBLAS sgemm peak), and the bf16 training throughput (--precision bf16);
#   7. with 2 or more GPUs, the multi-GPU part over NCCL: the layout tests at np 2, 4 and 8 (those
#      with at most one rank per GPU) and tessera-bench-collectives --device cuda on every GPU
#      (its #wrong must be 0); with one GPU it says it was skipped and why.
# Then one summary (format in docs/architecture.md, "Checking on a GPU"): a line per stage
# "gpu-check: <stage>: PASS|FAIL|SKIP <detail>" and a last line "gpu-check: RESULT ...".
# Exit codes: 0 every stage passed; 1 a stage failed; 2 the build failed; 3 no GPU.
# Extra arguments go to ctest in stage 3 (e.g. -R OpsGrad).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TESSERA_BUILD_DIR="${TESSERA_BUILD_DIR:-$ROOT/build-gpu}"
export TESSERA_CMAKE_ARGS="-DTESSERA_CUDA=ON ${TESSERA_CMAKE_ARGS:-}"
OUT="$TESSERA_BUILD_DIR/gpu-check"
summary=()
failed=0
stage() { summary+=("gpu-check: $1: $2 ${3:-}"); [ "$2" = FAIL ] && failed=1; echo "== gpu-check: $1: $2 ${3:-}"; }
finish() {
  echo
  printf '%s\n' "${summary[@]}"
  echo "gpu-check: RESULT $1"
  exit "$2"
}

# 1. Build (setup.sh installs missing packages and builds; it exits non-zero on a failed build).
if ! ( source "$ROOT/launch/setup.sh" ); then
  stage build FAIL "(see $TESSERA_BUILD_DIR/build.log)"
  finish "build failed" 2
fi
stage build PASS "($TESSERA_BUILD_DIR, CUDA architectures from CMAKE_CUDA_ARCHITECTURES)"
BIN="$TESSERA_BUILD_DIR"
mkdir -p "$OUT"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# 2. A GPU?
if ! "$BIN/tessera-bench" --device cuda --device-info >"$OUT/device.txt" 2>&1; then
  stage gpu SKIP "no GPU: $(grep -o 'error: .*' "$OUT/device.txt" | head -1)"
  finish "no GPU: built with CUDA, nothing run on a GPU" 3
fi
stage gpu PASS "$(grep -o 'device cuda:.*' "$OUT/device.txt" | head -1)"

# 3. The whole suite; the /cuda instances run here.
if (cd "$BIN" && ctest --output-on-failure --timeout 900 "$@" >"$OUT/ctest.log" 2>&1); then
  stage tests PASS "($(grep -E 'tests passed' "$OUT/ctest.log" | tail -1))"
else
  stage tests FAIL "($(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1); $OUT/ctest.log)"
fi

# 4. compute-sanitizer over the CUDA instances of the unit tests.
SANITIZER="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ -x "$SANITIZER" ]; then
  for tool in memcheck racecheck initcheck; do
    if "$SANITIZER" --tool "$tool" --error-exitcode 9 "$BIN/tests/tessera_unit_tests" \
         --gtest_filter='*/cuda:CudaBackend*:*Cuda*' >"$OUT/sanitizer-$tool.log" 2>&1; then
      stage "sanitizer $tool" PASS
    else
      stage "sanitizer $tool" FAIL "($OUT/sanitizer-$tool.log)"
    fi
  done
else
  stage sanitizer FAIL "(compute-sanitizer not found; install the CUDA toolkit's sanitizer)"
fi

# 5. CPU and GPU loss curves from the same seed.
for device in cpu cuda; do
  rm -rf "$OUT/curve-$device"
  "$BIN/tessera-train" --config "$ROOT/configs/tiny.cfg" --device "$device" --steps 200 --valid-every 0 \
    --out-dir "$OUT/curve-$device" >"$OUT/curve-$device.log" 2>&1 || echo "exit $?" >>"$OUT/curve-$device.log"
done
if [ -f "$OUT/curve-cpu/train.tsv" ] && [ -f "$OUT/curve-cuda/train.tsv" ]; then
  verdict="$(paste "$OUT/curve-cpu/train.tsv" "$OUT/curve-cuda/train.tsv" | awk -F'\t' '
    function rel(a, b) { d = a - b; if (d < 0) d = -d; return d / (b < 0 ? -b : b) }
    NR == 2 { first = rel($8, $2); first_cpu = $2; first_gpu = $8 }
    NR > 1 && $1 > 180 { cpu += $2; gpu += $8; n++ }
    END {
      if (n == 0) { print "FAIL fewer than 200 steps"; exit }
      last = rel(gpu / n, cpu / n)
      ok = first <= 1e-4 && last <= 0.03
      printf "%s step 1: cpu %.6f gpu %.6f (rel %.2e, limit 1e-4); steps 181-200 mean: cpu %.4f gpu %.4f (rel %.2e, limit 3e-2)\n",
             ok ? "PASS" : "FAIL", first_cpu, first_gpu, first, cpu / n, gpu / n, last
    }')"
  stage "cpu vs gpu curve" "${verdict%% *}" "${verdict#* }"
else
  stage "cpu vs gpu curve" FAIL "(a run did not finish: $OUT/curve-cpu.log, $OUT/curve-cuda.log)"
fi

# 6. Throughput on the GPU.
if "$BIN/tessera-bench" --device cuda --model-config "$ROOT/configs/small.cfg" "$ROOT/configs/base.cfg" \
     "$ROOT/configs/big.cfg" --no-breakdown >"$OUT/bench.md" 2>"$OUT/bench.log"; then
  stage bench PASS "($OUT/bench.md)"
  grep -E '^\| (small|base|big) ' "$OUT/bench.md" | sed 's/^/    /'
else
  stage bench FAIL "($OUT/bench.log)"
fi
if "$BIN/tessera-bench" --device cuda --precision bf16 --no-breakdown >"$OUT/bench-bf16.md" 2>"$OUT/bench-bf16.log"; then
  stage "bench bf16" PASS "($OUT/bench-bf16.md)"
  grep -E '^\| ' "$OUT/bench-bf16.md" | grep -v -- '---' | sed 's/^/    /'
else
  stage "bench bf16" FAIL "($OUT/bench-bf16.log)"
fi

# 7. Several GPUs: NCCL under the layout tests and the collective benchmark, one rank per GPU.
# GPUs this job may use: CUDA_VISIBLE_DEVICES when it is set, else every GPU nvidia-smi lists.
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
else
  gpus=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)
fi
gpus=${gpus:-0}
MPIRUN=(mpirun --oversubscribe --bind-to none)
if [ "$gpus" -lt 2 ]; then
  stage multi-gpu SKIP "$gpus GPU(s) listed (CUDA_VISIBLE_DEVICES, else nvidia-smi --list-gpus): the NCCL layout tests and collective benchmark need 2 or more"
else
  for np in 2 4 8; do
    [ "$np" -le "$gpus" ] || continue
    log="$OUT/layout-nccl-np$np.log"
    if TESSERA_LAYOUT_DEVICE=cuda "${MPIRUN[@]}" -np "$np" "$BIN/tests/mpi/layout_test" >"$log" 2>&1; then
      stage "nccl layout np $np" PASS "($(grep -E '\[  PASSED  \]' "$log" | tail -1 | sed 's/.*\] *//'))"
    else
      stage "nccl layout np $np" FAIL "($log)"
    fi
  done
  log="$OUT/collectives-np$gpus.txt"
  if "${MPIRUN[@]}" -np "$gpus" "$BIN/tessera-bench-collectives" --device cuda >"$log" 2>&1; then
    stage "nccl collectives np $gpus" PASS "($(grep -E '^# Avg bus bandwidth' "$log" | sed 's/^# //'); #wrong 0; $log)"
  else
    stage "nccl collectives np $gpus" FAIL "($(grep -E '^# #wrong' "$log" | sed 's/^# //'); $log)"
  fi
fi

if [ "$failed" -eq 0 ]; then finish "every stage passed" 0; else finish "a stage failed" 1; fi

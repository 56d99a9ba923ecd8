#!/usr/bin/env bash
# nccl_deadline.sh EXPECT_ABORT MPIRUN... : with at least 2 GPUs, runs the NCCL deadline test
# under expect_abort.sh (the job must fail within 4 s + 20 s for mpirun and NCCL start-up, with
# the watchdog's line naming the collective); without them exits 77 (ctest: skipped).
set -u
expect_abort=$1
shift
gpus=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -lt 2 ]; then
  echo "SKIP: needs 2 GPUs, found ${gpus:-0}"
  exit 77
fi
exec bash "$expect_abort" 24 \
  'rank 0 \(world\) timed out after [0-9.]+ s in all_reduce\(count=4096, f32, sum\) on group .world. of 2 ranks' "$@"

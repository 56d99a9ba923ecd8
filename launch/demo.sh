#!/usr/bin/env bash
# The main job: a multi-rank training run on the CPU. Installs what is missing, builds, then trains
# under mpirun with tensor parallelism 2 x data parallelism 2 (4 ranks).
# Extra arguments go to tessera-train (e.g. ./launch/demo.sh --steps 100).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$TESSERA_ROOT"
mpirun --oversubscribe --bind-to none -np 4 "$TESSERA_BUILD_DIR/tessera-train" \
  --config configs/tiny.cfg --tensor-parallel 2 --data-parallel 2 --threads 1 \
  --out-dir runs/demo "$@"

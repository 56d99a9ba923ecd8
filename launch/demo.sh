#!/usr/bin/env bash
# The main job, on the CPU: installs what is missing and builds; prepares the German->English
# corpus from Debian packages if it is not there (data/deen); trains the small model on it under
# mpirun with tensor parallelism 2 x data parallelism 2 (4 ranks) for TESSERA_DEMO_MINUTES
# minutes (default 10); then translates a few held-out sentences with beam search.
# Extra arguments go to tessera-train (e.g. ./launch/demo.sh --steps 200).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$TESSERA_ROOT"
BIN="$TESSERA_BUILD_DIR"
MPIRUN=(mpirun --oversubscribe --bind-to none)

"$BIN/tessera-prep" --out-dir data/deen --vocab-size 8000

# Exit code 75: stopped at the time limit before --steps, checkpoint saved (resumable).
rc=0
"${MPIRUN[@]}" -np 4 "$BIN/tessera-train" --config configs/small.cfg \
  --tensor-parallel 2 --data-parallel 2 --threads 1 \
  --time-limit "${TESSERA_DEMO_MINUTES:-10}" --out-dir runs/demo "$@" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 75 ] || exit "$rc"

echo
echo "== translating 5 held-out sentences (beam 4, tensor parallel 2) =="
head -n 5 data/deen/test.de > runs/demo/examples.de
head -n 5 data/deen/test.en > runs/demo/examples.en
"${MPIRUN[@]}" -np 2 "$BIN/tessera-translate" --checkpoint runs/demo/checkpoints --tensor-parallel 2 --threads 1 \
  --beam 4 --input runs/demo/examples.de --output runs/demo/examples.hyp --reference runs/demo/examples.en
paste -d '\n' runs/demo/examples.de runs/demo/examples.en runs/demo/examples.hyp /dev/null | \
  awk 'NR % 4 == 1 {print "de:  " $0} NR % 4 == 2 {print "ref: " $0} NR % 4 == 3 {print "hyp: " $0} NR % 4 == 0 {print ""}'

#!/usr/bin/env bash
# Scaling sweep: trains one short run per layout (tensor parallel x data parallel), benchmarks the
# collectives the layouts use, then writes a table (tokens/s, speed-up, efficiency, exposed
# communication, the performance model's prediction) and PNG plots (tools/scaling_report.py).
#
#   launch/scaling.sh --config configs/tiny.cfg --layouts "1x1 1x2 2x1 2x2 1x4 4x1" --mode both
#   sbatch --nodes=2 --ntasks-per-node=4 --wrap "launch/scaling.sh --config configs/base.cfg --layouts '1x8 4x2 8x1'"
#
# A layout TxD is --tensor-parallel T --data-parallel D on T*D ranks. Strong scaling keeps the
# global batch of the config (or --batch); weak scaling multiplies it by the ranks, so each rank's
# work stays that of one rank at the base batch. Runs go to OUT/<mode>-tp<T>-dp<D>/ (metrics.jsonl,
# the log in run.log), benchmarks to OUT/bench/p<P>-w<W>.txt: tessera-bench-collectives on P ranks
# while W ranks share the machine (W/P copies at once), the conditions of a P-rank group in a
# W-rank job. Ranks start with mpirun (--launcher), or with srun inside a SLURM allocation. Each
# run also records in machine.txt how many cores other programs used meanwhile (/proc/stat).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --config FILE        tessera-train config (repeatable; later ones override)   [configs/tiny.cfg]
  --layouts "TxD ..."  layouts to run                                 [1x1 1x2 2x1 2x2 1x4 4x1]
  --mode M             strong | weak | both                                              [both]
  --steps N            training steps per run                                              [20]
  --warmup N           first steps left out of the averages                                 [3]
  --threads N          threads per rank                                                     [1]
  --batch N            base global batch: --batch-sentences (synthetic) or --max-tokens (corpus)
                       [the config's]
  --out DIR            sweep directory                                          [runs/scaling]
  --build DIR          where tessera-train and tessera-bench-collectives are [$TESSERA_BUILD_DIR or build]
  --train EXE, --bench EXE   the two programs, when they are elsewhere
  --launcher "CMD"     rank launcher, -np N is appended (srun: -n N)
                       [mpirun --oversubscribe --bind-to none; srun when SLURM_JOB_ID is set]
  --bench-max-bytes N  largest message benchmarked                                [16777216]
  --bench-repeats N    benchmark runs; the model fits the fastest time of each size        [3]
  --no-bench           no collective benchmarks (the report then predicts the 1-rank runs only)
  --cores N            cores the ranks share, for the model                          [nproc]
  --title TEXT         a line above the plots
  -- ARGS              passed on to every tessera-train run
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${TESSERA_BUILD_DIR:-$ROOT/build}"
CONFIGS=() LAYOUTS="1x1 1x2 2x1 2x2 1x4 4x1" MODE=both STEPS=20 WARMUP=3 THREADS=1 BATCH="" OUT=runs/scaling
TRAIN="" BENCH="" LAUNCHER="" BENCH_MAX=16777216 BENCH_REPEATS=3 DO_BENCH=1 CORES="$(nproc)" TITLE="" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIGS+=(--config "$2"); shift 2 ;;
    --layouts) LAYOUTS="$2"; shift 2 ;;
    --mode) MODE="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --train) TRAIN="$2"; shift 2 ;;
    --bench) BENCH="$2"; shift 2 ;;
    --launcher) LAUNCHER="$2"; shift 2 ;;
    --bench-max-bytes) BENCH_MAX="$2"; shift 2 ;;
    --bench-repeats) BENCH_REPEATS="$2"; shift 2 ;;
    --no-bench) DO_BENCH=0; shift ;;
    --cores) CORES="$2"; shift 2 ;;
    --title) TITLE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "scaling.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(--config "$ROOT/configs/tiny.cfg")
TRAIN="${TRAIN:-$BUILD/tessera-train}"
BENCH="${BENCH:-$BUILD/tessera-bench-collectives}"
case "$MODE" in strong|weak) MODES=("$MODE") ;; both) MODES=(strong weak) ;;
  *) echo "scaling.sh: --mode must be strong, weak or both" >&2; exit 2 ;; esac
for exe in "$TRAIN" $([ "$DO_BENCH" = 1 ] && echo "$BENCH"); do
  [ -x "$exe" ] || { echo "scaling.sh: $exe not found (build it, or set --build)" >&2; exit 2; }
done

if [ -z "$LAUNCHER" ]; then
  if [ -n "${SLURM_JOB_ID:-}" ]; then LAUNCHER="srun --mpi=${TESSERA_SRUN_MPI:-pmix}"
  else LAUNCHER="mpirun --oversubscribe --bind-to none"; fi
fi
read -r -a LAUNCH <<<"$LAUNCHER"
np_flag() { if [ "$(basename "${LAUNCH[0]}")" = srun ]; then printf %s -n; else printf %s -np; fi; }
launch() {  # launch N CMD...: CMD on N ranks
  local n="$1"; shift
  "${LAUNCH[@]}" "$(np_flag)" "$n" "$@"
}

# CPU seconds the machine spent busy (all programs) and this script's finished children spent,
# to tell how much of the machine other programs took during a run.
busy_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat; }
children_cpu_s() {  # of the output of `times`, run in this shell (not in a subshell) into file $1
  tail -1 "$1" | awk '{t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t}'
}

# The device of the runs (-- --device cuda): the benchmarks then time NCCL on the GPUs.
DEVICE=cpu
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  if [ "${EXTRA[i]}" = --device ] && [ $((i + 1)) -lt ${#EXTRA[@]} ]; then DEVICE="${EXTRA[i + 1]}"; fi
done

# The merged options decide which option sizes the batch.
option() { "$TRAIN" "${CONFIGS[@]}" "${EXTRA[@]}" --dump-config | sed -n "s/^$1 *= *//p" | head -1; }
TASK="$(option task)"
if [ "$TASK" = corpus ]; then BATCH_OPT=--max-tokens; else BATCH_OPT=--batch-sentences; fi
BATCH="${BATCH:-$(option "${BATCH_OPT#--}")}"

mkdir -p "$OUT"
echo "scaling sweep: ${CONFIGS[*]#--config } task $TASK, layouts $LAYOUTS, ${MODES[*]}, $STEPS steps" \
     "($WARMUP warm-up), $THREADS thread(s) per rank, $BATCH_OPT $BATCH at 1 rank; into $OUT"
echo "launcher: ${LAUNCH[*]} $(np_flag) N; load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

for mode in "${MODES[@]}"; do
  for layout in $LAYOUTS; do
    tp="${layout%x*}" dp="${layout#*x}"
    world=$((tp * dp))
    batch="$BATCH"
    if [ "$mode" = weak ]; then batch=$((BATCH * world)); fi
    dir="$OUT/$mode-tp$tp-dp$dp"
    rm -rf "$dir"
    mkdir -p "$dir"
    times >"$dir/.times"
    start=$(date +%s%N) busy0=$(busy_cpu_s) own0=$(children_cpu_s "$dir/.times")
    if ! launch "$world" "$TRAIN" "${CONFIGS[@]}" --tensor-parallel "$tp" --data-parallel "$dp" \
           --threads "$THREADS" --steps "$STEPS" --log-every 1 --valid-every 0 --valid-bleu-sentences 0 \
           "$BATCH_OPT" "$batch" --out-dir "$dir" "${EXTRA[@]}" >"$dir/run.log" 2>&1; then
      echo "scaling.sh: the $mode run tp $tp x dp $dp failed; the end of $dir/run.log:" >&2
      tail -n 20 "$dir/run.log" >&2
      exit 1
    fi
    wall=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {print (b - a) / 1e9}')
    times >"$dir/.times"
    others=$(awk -v w="$wall" -v b0="$busy0" -v b1="$(busy_cpu_s)" -v o0="$own0" -v o1="$(children_cpu_s "$dir/.times")" \
                 'BEGIN {x = (b1 - b0 - (o1 - o0)) / w; print x < 0 ? 0 : x}')
    rm -f "$dir/.times"
    printf 'wall_s=%s\nothers_cores=%s\nload_after=%s\n' "$wall" "$others" "$(cut -d' ' -f1 /proc/loadavg)" \
           >"$dir/machine.txt"
    printf '  %-6s tp %d x dp %d (%d ranks, %s %s): %.1f s; other programs used %.2f cores meanwhile\n' \
           "$mode" "$tp" "$dp" "$world" "$BATCH_OPT" "$batch" "$wall" "$others"
  done
done

# Benchmarks: every group size P > 1 of the layouts, in a job of W ranks.
if [ "$DO_BENCH" = 1 ]; then
  mkdir -p "$OUT/bench"
  pairs=""
  for layout in $LAYOUTS; do
    tp="${layout%x*}" dp="${layout#*x}"
    for p in "$tp" "$dp"; do if [ "$p" -gt 1 ]; then pairs+="$p:$((tp * dp)) "; fi; done
  done
  for pair in $(tr ' ' '\n' <<<"$pairs" | sort -u); do
    p="${pair%:*}" w="${pair#*:}"
    copies=$((w / p))
    if [ -n "${SLURM_JOB_ID:-}" ]; then copies=1 w="$p"; fi  # one job step at a time in an allocation
    : >"$OUT/bench/p$p-w$w.txt"
    for ((r = 0; r < BENCH_REPEATS; r++)); do
      pids=()
      for ((c = 0; c < copies; c++)); do
        target="$OUT/bench/p$p-w$w.txt"
        if [ "$c" -gt 0 ]; then target=/dev/null; fi
        launch "$p" "$BENCH" --device "$DEVICE" --max-bytes "$BENCH_MAX" --iters 10 >>"$target" \
               2>"$OUT/bench/p$p-w$w.$c.log" &
        pids+=($!)
      done
      for pid in "${pids[@]}"; do wait "$pid"; done
    done
    echo "  benchmark: collectives on $p ranks, $w ranks on the machine -> $OUT/bench/p$p-w$w.txt"
  done
fi

# The report: a Python 3 with matplotlib draws the plots; without one the table is still written.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import matplotlib' 2>/dev/null; then PY="$candidate"; break; fi
  done
  PY="${PY:-python3}"
fi
command -v "$PY" >/dev/null || { echo "scaling.sh: no python3: runs are in $OUT, no report" >&2; exit 3; }
"$PY" "$ROOT/tools/scaling_report.py" "$OUT" --warmup "$WARMUP" --cores "$CORES" ${TITLE:+--title "$TITLE"}

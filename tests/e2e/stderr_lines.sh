#!/usr/bin/env bash
# stderr_lines.sh MPIRUN... -np 4 PROBE --chatter N ...: runs the job and checks that every
# "chatter" line in the merged output is whole (4 ranks x 2 threads x N lines, none cut or mixed).
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" >"$log" 2>&1 || { echo "FAIL: the job failed"; tail -20 "$log"; exit 1; }
n=0 prev=""
for a in "$@"; do [ "$prev" = "--chatter" ] && n=$a; prev=$a; done
want=$((4 * 2 * n))
awk -v want="$want" '
  /chatter/ {
    total++
    if ($0 !~ /^\[ *[0-9.]+s r[0-3] warn\] chatter rank [0-3] thread [01] line [0-9]+ x+ end$/ || length($0) < 330) {
      if (bad++ < 5) print "broken line: " $0
    }
  }
  END { print total " chatter lines, " bad + 0 " broken (want " want " whole)"; exit (bad > 0 || total != want) }' "$log"

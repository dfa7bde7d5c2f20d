#!/usr/bin/env bash
# #24's precision benchmark: wall time to a ±2% CI on the seed's ratio
# (uds-stream ÷ tcp4 at 64 B) with --precision, against the fixed default
# design (10 rounds of 100 ms), REPS repetitions of each, alternating
# (A B B A ...). Run from the repository root on a quiet machine:
#   results/<this dir>/precision-bench.sh OUT_DIR [REPS] [MAX_TIME]
# Writes OUT_DIR/{fixed,precision}-<i>/ (each a sockbench --out run) and
# OUT_DIR/walls.csv (design, repetition, wall seconds); summarize.py reads them.
set -euo pipefail
out=$1 reps=${2:-10} max=${3:-3m}
bin=target/release/sockbench
mkdir -p "$out"
echo "design,rep,wall_s" > "$out/walls.csv"
one() {
    local design=$1 i=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" latency -t tcp4,uds-stream -s 64 "$@" --progress never --out "$out/$design-$i" > /dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$design,$i,$(echo "$t1 - $t0" | bc)" >> "$out/walls.csv"
}
for i in $(seq 1 "$reps"); do
    if [ $((i % 2)) = 1 ]; then order="fixed precision"; else order="precision fixed"; fi
    for d in $order; do
        if [ "$d" = fixed ]; then one fixed "$i"; else one precision "$i" --precision 2% --max-time "$max"; fi
        echo "$(date -u +%T) $d $i done"
    done
done

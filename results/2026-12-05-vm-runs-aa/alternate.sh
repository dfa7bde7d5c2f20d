#!/usr/bin/env bash
# Evidence for #24: sets of runs recorded with scripts/record.sh --side, the
# sides alternating (before after after before ...), so that slow drift of
# the machine falls on both sides alike.
#   alternate.sh LABEL PAIRS BEFORE_CMD AFTER_CMD -- SOCKBENCH ARGS...
# BEFORE_CMD / AFTER_CMD run before each side's run (`true` for an A/A);
# the host sysctl is put back to its value on every exit.
set -euo pipefail
label=$1 pairs=$2 before=$3 after=$4; shift 5
restore=$(sysctl -n net.core.high_order_alloc_disable)
trap 'sysctl -qw net.core.high_order_alloc_disable=$restore' EXIT
for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) = 1 ]; then order="before after"; else order="after before"; fi
    for side in $order; do
        if [ $side = before ]; then eval "$before"; else eval "$after"; fi
        scripts/record.sh --side $side "$label" "$@" >/dev/null
        echo "$(date -u +%T) $label pair $i $side done"
    done
done

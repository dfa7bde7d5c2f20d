#!/usr/bin/env bash
# cold-pages.sh: why the first Unix-socket stream after other work can run at a tenth of its
# rate on a VM with free page reporting, shown by switching the reporting off and on.
#
# usage: scripts/crosscheck/cold-pages.sh RUN_PEERS PEERS_BIN OUT_DIR [PAIRS]
#
#   RUN_PEERS  path of run_peers.sh (the shared peers runner; not part of this repository)
#   PEERS_BIN  directory with lmbench's bw_tcp and bw_unix and netperf/netserver (built with
#              --enable-unixdomain), as run_peers.sh wants it
#   OUT_DIR    new directory: README.md, one raw TSV per run, samples.log
#   PAIRS      on/off pairs of runs (default 2; the order alternates: on off, off on, ...)
#
# Each run is run_peers.sh with TOOLS="netperf sockbench lmbench" KINDS=stream
# STREAM_SIZES=65536 DUR=1 REPS=6: per round, netperf TCP_STREAM and STREAM_STREAM, sockbench
# throughput tcp4, uds-stream and socketpair, then lmbench bw_tcp and bw_unix, so every round
# after the first starts its AF_UNIX streams after lmbench's. Runs alternate between free page
# reporting on (page_reporting.page_reporting_order as found, 9 here) and off (order 11: no
# free block is that large, so nothing is reported). Before the runs the page cache is filled
# (a file of all but 4 GiB of MemFree, written and read under $TMPDIR, removed at the end), as
# on a machine that has been working; MemFree and Cached are recorded around every run. A
# small C program (written here) times the first touch of 1 GiB of fresh memory after each run:
# the per-page cost of memory the hypervisor has to give back. A sampler records, every 0.2 s,
# the page allocations and each busy thread's CPU (samples.log).
#
# Needs root (it writes /sys/module/page_reporting/parameters/page_reporting_order and puts the
# value found back on every exit). Changes nothing else on the host.
set -euo pipefail

RUN_PEERS=${1:?usage: cold-pages.sh RUN_PEERS PEERS_BIN OUT_DIR [PAIRS]}
PEERS_BIN=${2:?usage: cold-pages.sh RUN_PEERS PEERS_BIN OUT_DIR [PAIRS]}
OUT=${3:?usage: cold-pages.sh RUN_PEERS PEERS_BIN OUT_DIR [PAIRS]}
PAIRS=${4:-2}
ORDER=/sys/module/page_reporting/parameters/page_reporting_order
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SB=$ROOT/target/release/sockbench

fatal() { echo "fatal: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fatal "needs root (it switches free page reporting off and on)"
[ -x "$RUN_PEERS" ] || fatal "$RUN_PEERS: not an executable run_peers.sh"
for b in bw_tcp bw_unix netperf netserver; do
  [ -x "$PEERS_BIN/$b" ] || fatal "$PEERS_BIN/$b: missing (lmbench's bw_tcp/bw_unix, netperf/netserver)"
done
[ -w "$ORDER" ] || fatal "$ORDER: no free page reporting here (nothing to switch)"
[ ! -e "$OUT" ] || fatal "$OUT: exists; name a new directory"
command -v gcc >/dev/null || fatal "gcc is missing (apt-get install gcc)"
(cd "$ROOT" && cargo build --release --quiet)

ON=$(cat "$ORDER")
OFF=11
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sockbench-cold-pages-XXXXXX")
SAMPLER=
cleanup() {
  echo "$ON" > "$ORDER"
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$OUT"

cat > "$WORK/touch.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
/* Fault in N MiB of fresh anonymous memory, one write per page: µs per page. */
int main(int argc, char **argv) {
    size_t n = (size_t)atol(argv[1]) << 20;
    struct timespec a, b;
    char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / (n / 4096));
    return 0;
}
C
gcc -O2 -o "$WORK/touch" "$WORK/touch.c"

cat > "$WORK/sampler.py" <<'PY'
import os, sys, time
KEYS = ("pgalloc_normal", "pgfree", "nr_free_pages")
def vm():
    return {k: int(v) for k, v in (l.split() for l in open("/proc/vmstat")) if k in KEYS}
def ticks():
    out = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                s = open(f"/proc/{p}/task/{t}/stat").read()
                f = s[s.rindex(")") + 2:].split()
                out[int(t)] = (s[s.index("(") + 1:s.rindex(")")], int(f[11]) + int(f[12]), f[36])
        except OSError:
            pass
    return out
out = open(sys.argv[1], "a")  # appending: the script writes run markers between samples
pv, pt = vm(), ticks()
while True:
    time.sleep(0.2)
    v, t = vm(), ticks()
    busy = sorted(((tk - pt.get(i, (c, tk, cpu))[1], c, cpu) for i, (c, tk, cpu) in t.items()), reverse=True)
    out.write(f"{time.time():.2f} free_pages={v['nr_free_pages']} "
              f"allocs={v['pgalloc_normal'] - pv['pgalloc_normal']} | "
              + " ".join(f"{c}@cpu{cpu}:{d}" for d, c, cpu in busy if d >= 2) + "\n")
    out.flush()
    pv, pt = v, t
PY

mem() { awk '/^MemFree:/ {f = $2} /^Cached:/ {c = $2} END {printf "MemFree %.1f GiB, Cached %.1f GiB", f / 1048576, c / 1048576}' /proc/meminfo; }

# A working machine's page cache: all but 4 GiB of the free memory.
free_mib=$(awk '/^MemFree:/ {print int($2 / 1024)}' /proc/meminfo)
fill=$((free_mib > 8192 ? free_mib - 4096 : 0))
echo "filling the page cache with $fill MiB (written and read under $WORK)" >&2
dd if=/dev/zero of="$WORK/cache" bs=1M count="$fill" status=none
cat "$WORK/cache" > /dev/null
echo "page cache filled: $(mem)" >&2

python3 "$WORK/sampler.py" "$OUT/samples.log" &
SAMPLER=$!

summary=()
i=0
for pair in $(seq 1 "$PAIRS"); do
  order=(on off)
  [ $((pair % 2)) = 0 ] && order=(off on)
  for mode in "${order[@]}"; do
    i=$((i + 1))
    if [ "$mode" = on ]; then echo "$ON" > "$ORDER"; else echo "$OFF" > "$ORDER"; fi
    sleep 5   # let reporting catch up (on) or stay still (off)
    before=$(mem)
    echo "$(date +%s.%N | cut -c1-13) run $i: reporting $mode ($(cat "$ORDER")), $before" >> "$OUT/samples.log"
    PEERS_BIN="$PEERS_BIN" SOCKBENCH="$SB" TOOLS="netperf sockbench lmbench" KINDS=stream \
      STREAM_SIZES=65536 DUR=1 REPS=6 RAW="$OUT/raw-$i-$mode.tsv" "$RUN_PEERS" > "$OUT/run-$i-$mode.txt" 2>&1
    after=$(mem)
    touch_us=$("$WORK/touch" 1024)
    first=$(awk -F'\t' '$2 == "uds-stream" && $5 == "netperf" {printf "%.1f ", $NF}' "$OUT/raw-$i-$mode.tsv")
    sbu=$(awk -F'\t' '$2 == "uds-stream" && $5 == "sockbench" {printf "%.1f ", $NF}' "$OUT/raw-$i-$mode.tsv")
    sbp=$(awk -F'\t' '$2 == "socketpair" && $5 == "sockbench" {printf "%.1f ", $NF}' "$OUT/raw-$i-$mode.tsv")
    summary+=("| $i | $mode | $first| $sbu| $sbp| $touch_us | $before → $after |")
    echo "run $i (reporting $mode): netperf STREAM_STREAM $first; first touch $touch_us µs/page" >&2
  done
done

{
  echo "# $(basename "$OUT")"
  echo
  echo "Command (from the repository root, at revision \`$(git -C "$ROOT" rev-parse --short=12 HEAD)$(git -C "$ROOT" diff --quiet || echo -dirty)\`):"
  echo
  echo '```sh'
  echo "scripts/crosscheck/cold-pages.sh $*"
  echo '```'
  echo
  echo "Kernel $(uname -r), $(nproc) CPUs; free page reporting order when on: $ON (off: $OFF)."
  echo "Each run: 6 rounds of run_peers.sh (netperf, sockbench, lmbench; 64 KiB streams, 1 s each),"
  echo "Gbit/s per round in order. netperf's STREAM_STREAM is the first AF_UNIX stream of each round;"
  echo "rounds 2-6 start it right after lmbench's bw_tcp and bw_unix. First touch: µs per page to"
  echo "fault in 1 GiB of fresh memory just after the run."
  echo
  echo "| run | reporting | netperf STREAM_STREAM | sockbench uds-stream | sockbench socketpair | first touch µs/page | memory before → after |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${summary[@]}"
} > "$OUT/README.md"
echo "$OUT/README.md" >&2

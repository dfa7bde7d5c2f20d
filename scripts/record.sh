#!/usr/bin/env bash
# Record a sockbench run under results/: builds the release binary, runs
#   sockbench ARGS... --out results/<date>-<host>-<label>
# and writes that directory's README.md with the exact command, the commit,
# the table, the warnings and the fingerprint's headline fields.
#
# usage: scripts/record.sh [--side SIDE] LABEL SUBCOMMAND [ARGS...]
#   e.g. scripts/record.sh latency-cross-core latency -t all -s 1,64,4K
#
# --side SIDE (e.g. before, after): one run of a set compared across runs
# (scripts/compare, docs/comparing.md). The run goes to
#   results/<date>-<host>-<label>/<SIDE>/<UTC date and time>
# where <date> is the day the set's first run was recorded: run the same
# command after each boot, kernel or setting, and each run joins its side.
set -euo pipefail
side=
if [ "${1:-}" = --side ]; then
    side=${2:-}
    case $side in
        ""|*/*|.*|-*|*[!A-Za-z0-9._-]*) echo "fatal: --side '$side': a plain name such as before or after expected" >&2; exit 2 ;;
    esac
    shift 2
fi
[ $# -ge 2 ] || { echo "usage: $0 [--side SIDE] LABEL SUBCOMMAND [ARGS...]" >&2; exit 2; }
label=$1; shift
case $label in
    ""|*/*|.*|-*|*[!A-Za-z0-9._-]*) echo "fatal: LABEL '$label': a plain name such as kernel-6.18 expected (letters, digits, . _ -)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "fatal: uncommitted changes; commit first so the run names a real revision" >&2
    exit 1
fi
cargo build --release --quiet
mkdir -p results
dir="results/$(date -u +%Y-%m-%d)-$(hostname -s)-$label"
if [ -n "$side" ]; then
    # The set's directory, if an earlier run (another day, another boot) made it.
    # Exactly <date>-<host>-<label>: not a set whose label merely ends so.
    set_dir=$(ls -d results/*/ 2>/dev/null | sed 's|/$||' \
        | grep -xE "results/[0-9]{4}-[0-9]{2}-[0-9]{2}-$(hostname -s)-${label//./\\.}" | head -n 1 || true)
    if [ -n "$set_dir" ]; then
        n=$(ls -d "$set_dir"/*/*/ 2>/dev/null | wc -l)
        echo "joining the set $set_dir ($n runs so far); a new set needs a new LABEL" >&2
    fi
    dir="${set_dir:-$dir}/$side/$(date -u +%Y-%m-%dT%H%M%SZ)"
    mkdir -p "$(dirname "$dir")"
fi
[ -e "$dir" ] && { echo "fatal: $dir exists" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmd=(target/release/sockbench "$@" --out "$dir")
start=$(date +%s)
"${cmd[@]}" > "$tmp/table.txt" 2> "$tmp/stderr.txt" || { cat "$tmp/stderr.txt" >&2; exit 1; }
wall=$(( $(date +%s) - start ))
python3 - "$dir" "$tmp" "$wall" "sockbench ${*}" <<'PY'
import json, sys, os
d, tmp, wall, cmd = sys.argv[1:5]
env = json.load(open(os.path.join(d, "env.json")))
table = open(os.path.join(tmp, "table.txt")).read()
warn = open(os.path.join(tmp, "stderr.txt")).read()
keys = ["kernel_release", "cpu_model", "cpus_online", "cpus_used", "smt_active", "virtualization",
        "clocksource", "cpufreq_governor", "git_revision", "rustc", "build_profile", "taken_at"]
with open(os.path.join(d, "README.md"), "w") as f:
    f.write(f"# {os.path.basename(d)}\n\n")
    f.write(f"Command (from the repository root, at revision `{env['git_revision']}`):\n\n")
    f.write(f"```sh\ncargo run --release -- {cmd[len('sockbench '):]} --out {d}\n```\n\n")
    f.write(f"Wall time: {wall} s. Files: summary.csv/summary.json (every column), env.json (full fingerprint), one .hgrm per case (µs).\n\n")
    f.write("## Table\n\n```\n" + table + "```\n\n")
    if warn.strip():
        f.write("## On stderr (warnings; a sweep's steps)\n\n```\n" + warn + "```\n\n")
    f.write("## Machine\n\n| field | value |\n|---|---|\n")
    for k in keys:
        f.write(f"| {k} | {env.get(k)} |\n")
    f.write("\nSocket sysctls: see env.json (`sysctls`).\n")
PY
echo "$dir"
cat "$tmp/table.txt"

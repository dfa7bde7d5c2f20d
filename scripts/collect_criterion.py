#!/usr/bin/env python3
"""Summarise a criterion run of sockbench's benches into a results directory.

Reads, for every benchmark under CRITERION_DIR (default target/criterion),
criterion's stable raw.csv from the BASELINE directory (default "new") and
sockbench's tail side files beside it (tails.json, tails.hgrm, env.json).
Writes OUT/summary.csv (one row per benchmark: time per iteration from the
samples, throughput, and the HDR tails), copies the .hgrm files and one
env.json, and never writes anything else. Standard library only.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import sys

from scripts import cli, resultfiles


def fatal(msg):
    print(f"fatal: {msg}", file=sys.stderr)
    sys.exit(2)  # every failure here is the input's


def read_raw(path):
    try:
        first, per_iter, total_ns, total_iter = resultfiles.read_raw_csv(path)
    except cli.Fatal as e:
        fatal(str(e))
    return {
        "group": first["group"], "transport": first["function"], "param": first["value"],
        "samples": len(per_iter), "iterations": int(total_iter),
        "mean_ns_per_iter": total_ns / total_iter,
        "median_ns_per_iter": statistics.median(per_iter),
        "min_ns_per_iter": min(per_iter), "max_ns_per_iter": max(per_iter),
        "throughput_per_iter": first["throughput_num"], "throughput_type": first["throughput_type"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="results directory to write (must not exist)")
    p.add_argument("--criterion-dir", default="target/criterion")
    p.add_argument("--baseline", default="new", help="baseline directory to read (default: new)")
    args = p.parse_args()
    if not os.path.isdir(args.criterion_dir):
        fatal(f"{args.criterion_dir}: no criterion output (run `cargo bench` first)")
    if os.path.exists(args.out):
        fatal(f"{args.out}: exists; name a new directory")
    found = []
    for root, dirs, files in os.walk(args.criterion_dir):
        if os.path.basename(root) == args.baseline and "raw.csv" in files:
            found.append(root)
    if not found:
        fatal(f"no {args.baseline}/raw.csv under {args.criterion_dir} (criterion's csv_output feature must be on)")
    rows, env = [], None
    tmp = args.out + ".partial"
    os.makedirs(os.path.join(tmp, "tails"), exist_ok=False)
    try:
        for d in sorted(found):
            row = read_raw(os.path.join(d, "raw.csv"))
            tails = os.path.join(d, "tails.json")
            if os.path.exists(tails):
                s = json.load(open(tails))["summary"]
                for k in ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns", "mean_ns"]:
                    row["tail_" + k] = s[k]
                row["tail_n"] = s["n"]
                name = f"{row['group']}-{row['transport']}-{row['param']}.hgrm"
                shutil.copy(os.path.join(d, "tails.hgrm"), os.path.join(tmp, "tails", name))
                if env is None and os.path.exists(os.path.join(d, "env.json")):
                    env = os.path.join(d, "env.json")
            rows.append(row)
        cols = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("tail_"), list(rows[0]).index(k) if k in rows[0] else 99))
        with open(os.path.join(tmp, "summary.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        if env:
            shutil.copy(env, os.path.join(tmp, "env.json"))
        os.rename(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"{args.out}: {len(rows)} benchmarks")


if __name__ == "__main__":
    main()

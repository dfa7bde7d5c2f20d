"""Summarize precision-bench.sh's runs: one row per run, then per design
the median wall time, rounds and CI half-width of uds-stream ÷ tcp4's p50.
usage: python3 summarize.py OUT_DIR   (standard library only)"""
import csv
import json
import os
import statistics
import sys

out = sys.argv[1]
walls = {(r["design"], int(r["rep"])): float(r["wall_s"]) for r in csv.DictReader(open(os.path.join(out, "walls.csv")))}
rows = []
for (design, rep), wall in sorted(walls.items(), key=lambda x: (x[0][1], x[0][0])):
    d = json.load(open(os.path.join(out, f"{design}-{rep}", "summary.json")))
    r = next(x for x in d["ratios"] if x["metric"] == "p50" and x["numerator"] == "uds-stream")
    half = (r["ci_high"] - r["ci_low"]) / 2 / r["ratio"]
    p = d.get("precision") or {}
    rows.append((design, rep, wall, d["rounds"], r["ratio"], r["ci_low"], r["ci_high"], half, p.get("reached")))
print("| design | rep | wall s | rounds | uds-stream ÷ tcp4 p50 (95% CI) | half-width | reached ±2% |")
print("|---|---|---|---|---|---|---|")
for design, rep, wall, rounds, ratio, lo, hi, half, reached in rows:
    got = {None: "–", True: "yes", False: "no"}[reached]
    print(f"| {design} | {rep} | {wall:.1f} | {rounds} | {ratio:.3f} ({lo:.3f}–{hi:.3f}) | ±{100 * half:.1f}% | {got} |")
print()
print("| design | runs | median wall s (min–max) | median rounds | median half-width (min–max) | runs within ±2% |")
print("|---|---|---|---|---|---|")
for design in ("fixed", "precision"):
    of = [x for x in rows if x[0] == design]
    w = [x[2] for x in of]
    h = [x[7] for x in of]
    within = sum(1 for x in of if x[7] <= 0.02)
    print(f"| {design} | {len(of)} | {statistics.median(w):.1f} ({min(w):.1f}–{max(w):.1f}) | "
          f"{statistics.median([x[3] for x in of]):g} | ±{100 * statistics.median(h):.1f}% "
          f"(±{100 * min(h):.1f}–{100 * max(h):.1f}%) | {within} of {len(of)} |")

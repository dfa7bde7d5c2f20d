"""Before/after comparison of two sockbench runs or two criterion baselines.

usage: scripts/compare BEFORE AFTER [-o OUT_DIR] [--allow-different-hardware]

BEFORE and AFTER are `sockbench --out` directories, or CRITERION_DIR:BASELINE
(e.g. target/criterion:before and target/criterion:new). For every case in
both, it reports the change of the median (per-trial medians for sockbench,
per-sample times for criterion; throughput: bytes/s) with a 95% bootstrap
CI, p99 before and after, and a verdict: faster, slower, or no significant
change (the CI includes 0). It lists the fingerprint fields that differ
(sysctls, kernel, CPUs) and refuses runs from different hardware unless
--allow-different-hardware. Writes OUT_DIR/compare.md and a delta figure;
OUT_DIR defaults to ./compare-<before>-vs-<after> (a comparison never
writes into a recorded run).
"""
import argparse
import os
import statistics
import sys

from scripts import cli, outputs, resultfiles, stats
from scripts.labels import cell, ratio_ci, size_label, sizes_label

HARDWARE = ["cpu_model", "cpus_online", "memory_total_kib", "smt_active", "virtualization"]


def median(xs):
    return statistics.median(xs)


def samples(case):
    """Per-trial (or per-sample) values of the case's main metric, and
    whether larger is better."""
    if case["workload"] == "throughput":
        if "trial_points" in case:
            return [t["delivered"] * case["size_bytes"] * 1e9 / max(t["elapsed_ns"], 1)
                    for t in case["trial_points"]], True
        return [case["size_bytes"] * 1e9 / s for s in case["samples_ns_per_iter"]], True
    if "trial_points" in case:
        return [t["p50_ns"] for t in case["trial_points"]], False
    return case["samples_ns_per_iter"], False


def label(case):
    size = sizes_label(case["size_bytes"], case["response_bytes"])
    extra = f" x{case['pairs']}" if case.get("pairs", 1) > 1 else ""
    knobs = f" [{case['knobs']}]" if case.get("knobs") else ""
    return f"{case['workload']} {case['transport']} {size}{extra}{knobs}"


def main():
    p = cli.parser("scripts/compare", __doc__)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("-o", "--output")
    p.add_argument("--allow-different-hardware", action="store_true",
                   help="compare even if CPU model, CPU count, memory or virtualization differ")
    args = p.parse_args()
    from scripts import plots  # matplotlib: only once arguments are checked
    before, after = resultfiles.load(args.before), resultfiles.load(args.after)
    hw = [f"{k}: {before.env.get(k)!r} → {after.env.get(k)!r}" for k in HARDWARE
          if before.env.get(k) != after.env.get(k)]
    if hw and not args.allow_different_hardware:
        cli.fatal("the runs come from different hardware (" + "; ".join(hw) +
                   "); a comparison would measure the machines, not the change. "
                   "Pass --allow-different-hardware to compare anyway")
    b_cases = {resultfiles.key(c): c for c in before.cases if not c.get("aa_control")}
    rows = []
    for i, a in enumerate(after.cases):
        b = b_cases.get(resultfiles.key(a))
        if a.get("aa_control"):
            continue
        if b is None:
            continue
        (bs, higher_better), (as_, _) = samples(b), samples(a)
        ch, lo, hi = stats.change_ci(bs, as_, seed=i)
        if higher_better:
            verdict = "faster" if lo > 0 else "slower" if hi < 0 else "no significant change"
        else:
            verdict = "faster" if hi < 0 else "slower" if lo > 0 else "no significant change"
        p99 = None
        if "p99_ns" in a and "p99_ns" in b and b["p99_ns"]:
            trials99 = [[t.get("p99_ns") for t in c.get("trial_points", [])] for c in (b, a)]
            if all(v and all(trials99[i]) for i, v in enumerate(trials99)):
                p99 = (median(trials99[0]), median(trials99[1])) + stats.change_ci(trials99[0], trials99[1],
                                                                                     seed=10_000 + i)
            else:  # criterion, or runs without per-trial p99: the merged p99, no CI
                p99 = (b["p99_ns"], a["p99_ns"], a["p99_ns"] / b["p99_ns"] - 1, None, None)
        rows.append({"case": label(a), "metric": "bytes/s" if higher_better else "p50 ns",
                     "before": median(bs), "after": median(as_), "change": ch, "ci_low": lo, "ci_high": hi,
                     "p99": p99, "verdict": verdict, "n": (len(bs), len(as_))})
    if not rows:
        cli.fatal(f"no case is in both {args.before} and {args.after} (same workload, transport, sizes, depth, pairs)")
    name = lambda r: r.label.replace(":", "-").replace(os.sep, "-")  # noqa: E731
    out = args.output or f"compare-{name(before)}-vs-{name(after)}"
    out = outputs.output_dir(out)
    fig = plots.deltas(rows, outputs.subdir(out, "figures"), f"after: {after.label}\nbefore: {before.label}")
    diff = []
    for k in sorted(set(before.env) | set(after.env)):
        if k in ("taken_at", "sysctls", "mitigations"):
            continue
        if before.env.get(k) != after.env.get(k):
            diff.append(f"| {cell(k)} | {cell(before.env.get(k))} | {cell(after.env.get(k))} |")
    for group in ("sysctls", "mitigations"):
        bs_, as2 = before.env.get(group) or {}, after.env.get(group) or {}
        for k in sorted(set(bs_) | set(as2)):
            if bs_.get(k) != as2.get(k):
                diff.append(f"| {group}.{cell(k)} | {cell(bs_.get(k))} | {cell(as2.get(k))} |")
    md = [f"# Before/after: {cell(after.label)} vs {cell(before.label)}", "",
          f"- before: `{cell(before.command)}` ({cell(before.env.get('git_revision', '?'))}, "
          f"{cell(before.env.get('taken_at', '?'))})",
          f"- after: `{cell(after.command)}` ({cell(after.env.get('git_revision', '?'))}, "
          f"{cell(after.env.get('taken_at', '?'))})", ""]
    if hw:
        md += [f"**Warning: different hardware ({'; '.join(hw)}); compared because --allow-different-hardware.**", ""]
    # Each run's own resolution: its A/A control ratios (`--control`).
    aa = []
    for which, run in (("before", before), ("after", after)):
        for x in run.ratios:
            if x.get("knob") == "control":
                aa.append(f"| {which} | {cell(x['numerator'])} | "
                          f"{sizes_label(x['size_bytes'], x['response_bytes'])} | {cell(x['metric'])} | "
                          f"{ratio_ci(x)} |")
    settings = []
    for k in ("mode", "wait", "nodelay", "placement", "trials", "direction"):
        bv = {c.get(k) for c in before.cases}
        av = {c.get(k) for c in after.cases}
        if bv != av:
            fmt = lambda v: ", ".join(str(x) for x in sorted(v, key=str))  # noqa: E731
            settings.append(f"| {k} | {fmt(bv)} | {fmt(av)} |")
    md += ["## What differs in the run settings", ""]
    md += (["| setting | before | after |", "|---|---|---|"] + settings) if settings else ["Nothing."]
    md += ["", "## What differs in the fingerprint", ""]
    md += (["| field | before | after |", "|---|---|---|"] + diff) if diff else ["Nothing but the time taken."]
    md += ["", "## Per case", "",
           "Change of the median, after vs before, with a 95% bootstrap CI over the runs' trials (sockbench: the "
           "per-trial p50, or bytes/s for throughput) or samples (criterion: time per iteration). Verdict: faster "
           "or slower when the CI excludes 0, else no significant change.", "",
           "| case | before | after | change (95% CI) | verdict |",
           "|---|---|---|---|---|"]
    for r in rows:
        fmt = (lambda v: f"{v / 1e9:.3f} GB/s") if r["metric"] == "bytes/s" else (lambda v: f"{v / 1e3:.2f} µs")
        md.append(f"| {cell(r['case'])} | {fmt(r['before'])} | {fmt(r['after'])} | {100 * r['change']:+.1f}% "
                  f"({100 * r['ci_low']:+.1f} … {100 * r['ci_high']:+.1f}) | {r['verdict']} |")
    tails = [r for r in rows if r["p99"]]
    if tails:
        md += ["", "## Tails", "",
               "The median of the per-trial p99s, before and after, and its change with a 95% bootstrap CI "
               "(criterion keeps no per-sample p99: there, the p99 of every sample and no CI).", "",
               "| case | p99 before | p99 after | change (95% CI) |", "|---|---|---|---|"]
        for r in tails:
            b99, a99, ch99, lo99, hi99 = r["p99"]
            ci = "no CI" if lo99 is None else f"{100 * lo99:+.1f} … {100 * hi99:+.1f}"
            md.append(f"| {cell(r['case'])} | {b99 / 1e3:.2f} µs | {a99 / 1e3:.2f} µs | {100 * ch99:+.1f}% ({ci}) |")
    if fig:
        md += ["", f"![change per case](figures/{os.path.basename(fig)})"]
    if aa:
        md += ["", "## Each run's A/A spread", "",
               "Runs made with `--control` hold a copy of their baseline run as a case of its own in the same "
               "rounds: its ratio to the baseline should be 1, and its CI is what that run can tell apart. A "
               "change between two runs smaller than this spread is within one run's own noise; a setting "
               "compared inside one run (a knob list) is read against it directly.", "",
               "| run | transport | sizes | metric | A/A ratio (95% CI) |", "|---|---|---|---|---|"] + aa
    md += ["", f"Made by `scripts/compare {cell(args.before)} {cell(args.after)}`.", ""]
    path = os.path.join(out, "compare.md")
    outputs.write_text(path, "\n".join(md))
    print(path)


if __name__ == "__main__":
    cli.run(main)

"""Before/after across runs: a kernel, a boot parameter, a setting applied
by hand, a build.

usage: scripts/compare BEFORE AFTER [options]
       scripts/compare BEFORE... -- AFTER... [options]

Each side is one or more runs: `sockbench --out` directories, directories
holding such runs (as `scripts/record.sh --side` makes them), or criterion
baselines CRITERION_DIR:BASELINE (one run each). The run is the unit: for
every case in all runs, the change of the median (and of the p99) of time
per operation, per byte for throughput (below 0: faster), with a 95% CI
from a two-level bootstrap (runs, then trials), the Mann-Whitney p over
the runs' medians, the runs' own A/A noise, the smallest change the runs
can detect and the runs per side a --target change needs. A verdict
(faster, slower) needs p < 0.05, a CI that excludes 0 and a change larger
than the noise; otherwise "~", no change at this resolution. With one run
per side run-to-run noise is unknown: the change is printed, no verdict.

Prints the table; writes OUT/compare.md, OUT/compare.json and (unless
--no-figure, which needs nothing but Python) a delta figure. OUT defaults
to ./compare-<before>-vs-<after>: a comparison never writes into a run.
Runs from different hardware, or of different workloads, are refused
(hardware: unless --allow-different-hardware).
"""
import argparse
import json
import os
import sys
import textwrap

from scripts import cli, outputs, resultfiles, runstats
from scripts.cli import BadInput
from scripts.labels import cell, ratio_ci, sizes_label

HARDWARE = ["cpu_model", "cpus_online", "memory_total_kib", "virtualization"]
# MemTotal moves by a few hundred KiB between kernels of one machine.
MEMORY_TOLERANCE = 0.01
# The A/A of runs recorded on the VM this project measures on (docs/comparing.md).
RECORDED_AA = "results/2026-12-05-vm-runs-aa"


def parser(positional, metavar):
    p = cli.parser("scripts/compare", __doc__)
    p.add_argument(positional, nargs="+", metavar=metavar)
    p.add_argument("-o", "--output")
    p.add_argument("--target", default="5%", help="the change to plan runs for (default 5%%)")
    p.add_argument("--no-figure", action="store_true", help="no delta figure: needs no plotting packages")
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--allow-different-hardware", action="store_true",
                   help="compare even if CPU model, CPU count, memory or virtualization differ")
    return p


def parse(argv):
    """(options, before specs, after specs): `BEFORE AFTER`, or `BEFORE... -- AFTER...`
    (options on either side of the --)."""
    p = parser("before", "BEFORE")
    if "--" in argv:
        i = argv.index("--")
        if i + 1 == len(argv):
            p.error("no AFTER run after --")
        args = p.parse_args(argv[:i])
        later = parser("after", "AFTER").parse_args(argv[i + 1:])
        for k, v in vars(later).items():
            if k != "after" and v != p.get_default(k):
                setattr(args, k, v)
        before, after = args.before, later.after
    else:
        args = p.parse_args(argv)
        if len(args.before) != 2:
            p.error(f"{len(args.before)} runs given: name BEFORE AFTER, or BEFORE... -- AFTER...")
        before, after = args.before[:1], args.before[1:]
    try:
        target = float(args.target.rstrip("%")) / 100
    except ValueError:
        target = 0
    if not 0.001 <= target < 1:
        p.error(f"--target {args.target!r}: a change between 0.1% and 99%, e.g. 5%")
    args.target = target
    return args, before, after


def expand(spec):
    """The runs a spec names: a run, a criterion baseline, or a directory
    of runs (each subdirectory holding a summary.json)."""
    if os.path.isdir(spec) and not any(os.path.exists(os.path.join(spec, f))
                                       for f in ("summary.json", "summary.csv", "env.json")):
        inner = sorted(os.path.join(spec, d) for d in os.listdir(spec)
                       if os.path.exists(os.path.join(spec, d, "summary.json")))
        if inner:
            return [resultfiles.load(d) for d in inner]
        if not any("raw.csv" in files for _, _, files in os.walk(spec)):  # nor a criterion directory
            raise BadInput(f"{spec}: holds no run (no summary.json in it or in a directory inside it)")
    return [resultfiles.load(spec)]


def identity(run):
    """Where a run is: its directory, and which baseline for criterion's."""
    return os.path.realpath(run.source), run.label if run.label.startswith("criterion:") else ""


def side(name, specs):
    runs = [r for s in specs for r in expand(s)]
    if not runs:
        raise BadInput(f"the {name} side holds no run")
    seen = {}
    for r in runs:
        where = identity(r)
        if where in seen:
            raise BadInput(f"{r.label if r.label.startswith('criterion:') else r.source}: named twice on the "
                           f"{name} side (as {seen[where]}); "
                           "a run counted twice would pass for two runs")
        seen[where] = r.source
    kinds = {tuple(r.workloads()) for r in runs}
    if len(kinds) > 1:
        raise BadInput(f"the {name} runs measure different workloads ("
                       + " vs ".join(", ".join(k) for k in sorted(kinds)) + "): compare like with like")
    return runs


def trials(case, metric):
    """A case's per-trial values of a metric, time-based: p50 or p99 ns, or
    ns per byte for throughput (criterion: its samples, p50 only)."""
    if "trial_points" not in case and "samples_ns_per_iter" not in case:
        raise BadInput(f"{label(case)}: no trial_points (a run recorded before per-trial figures, or a "
                       "truncated summary): compare needs each trial")
    if "trial_points" in case:
        pts = case["trial_points"]
        if metric == "ns_per_byte":
            if not all("elapsed_ns" in t and "delivered" in t for t in pts):
                raise BadInput(f"{label(case)}: a trial point without elapsed_ns or delivered")
            return [t["elapsed_ns"] / max(t["delivered"] * case["size_bytes"], 1) for t in pts]
        vals = [t.get(metric + "_ns") for t in pts]
        return vals if vals and all(v for v in vals) else None
    if metric == "p99":
        return None  # criterion keeps no per-sample p99
    per = case["samples_ns_per_iter"]
    return [s / case["size_bytes"] for s in per] if metric == "ns_per_byte" else per


def label(case):
    size = sizes_label(case["size_bytes"], case["response_bytes"])
    extra = f" x{case['pairs']}" if case.get("pairs", 1) > 1 else ""
    rate = f" @{case['offered_per_s']:g}/s" if case.get("offered_per_s") else ""
    netns = f" netns={case['netns']}" if case.get("netns", "off") != "off" else ""
    knobs = f" [{case['knobs']}]" if case.get("knobs") else ""
    return f"{case['workload']} {case['transport']} {size}{extra}{rate}{netns}{knobs}"


def shown(metric, v):
    """A side's value as a reader reads it: µs, or Gbit/s for throughput."""
    return f"{8 / v:.3g} Gbit/s" if metric == "ns_per_byte" else f"{v / 1e3:.2f} µs"


def compare_cases(before, after, target):
    """One row per case and metric present in every run of both sides."""
    def cases(run):
        return {resultfiles.key(c): c for c in run.cases if not c.get("aa_control")}
    b_sets, a_sets = [cases(r) for r in before], [cases(r) for r in after]
    keys = [k for k in a_sets[0] if all(k in s for s in b_sets + a_sets)]
    partial = sorted({label(s[k]) for s in b_sets + a_sets for k in s if k not in keys})
    rows = []
    for i, k in enumerate(keys):
        first = a_sets[0][k]
        metrics = ["ns_per_byte"] if first["workload"] == "throughput" else ["p50", "p99"]
        for metric in metrics:
            b = [trials(s[k], metric) for s in b_sets]
            a = [trials(s[k], metric) for s in a_sets]
            if not all(b + a):
                continue
            ch, lo, hi = runstats.change_ci(b, a, seed=1 + 2 * i)
            p = runstats.mann_whitney_p([runstats.run_value(r) for r in b], [runstats.run_value(r) for r in a])
            noise = runstats.noise(b, a, seed=2 + 2 * i)
            can = runstats.smallest_p(len(b), len(a)) < runstats.ALPHA
            detect = runstats.detectable(noise) if noise is not None and can else None
            rows.append({
                "case": label(first), "metric": metric, "runs": [len(b), len(a)],
                "trials": [sum(map(len, b)), sum(map(len, a))],
                "before": runstats.side_value(b), "after": runstats.side_value(a),
                "change": ch, "ci_low": lo, "ci_high": hi, "p": p, "noise": noise, "detectable": detect,
                # The standard error goes with √(1/nb + 1/na): the sides' harmonic mean.
                "runs_needed": runstats.runs_needed(detect, 2 / (1 / len(b) + 1 / len(a)), target)
                if detect and runstats.smallest_p(len(b), len(a)) < runstats.ALPHA else None,
                "verdict": runstats.verdict(ch, lo, hi, p, noise)})
    return rows, partial


def pct(v, digits=1):
    return f"{100 * v:+.{digits}f}%"


def terminal_table(rows):
    """The comparison as a benchstat reader expects it, in 100 columns
    (case names longer than 36 characters are cut: compare.md has them whole)."""
    w = max([len("case")] + [len(r["case"]) for r in rows])
    w = min(w, 36)
    head = f"{'case':<{w}} {'metric':<6} {'before':>13} {'after':>13} {'change':>7} {'95% CI':>15} {'p':>5}  verdict"
    out = [head]
    for r in rows:
        case = r["case"] if len(r["case"]) <= w else r["case"][:w - 1] + "…"
        metric = "ns/B" if r["metric"] == "ns_per_byte" else r["metric"]
        ci = f"{100 * r['ci_low']:+.1f} … {100 * r['ci_high']:+.1f}"
        p = "–" if r["p"] is None else f"{r['p']:.3f}"
        out.append(f"{case:<{w}} {metric:<6} {shown(r['metric'], r['before']):>13} "
                   f"{shown(r['metric'], r['after']):>13} {pct(r['change']):>7} {ci:>15} {p:>5}  {r['verdict']}")
    return out


def runs(n):
    return f"{n} run" + ("" if n == 1 else "s")


def needed(n):
    """Runs per side, as a plan a person would follow."""
    return "more than 100" if n > 100 else str(n)


def resolution_lines(rows, runs, target):
    """What these runs can resolve, or why they cannot give a verdict."""
    nb, na = runs
    if min(nb, na) < 2:
        return [f"No verdict: with {nb} run{'s' if nb > 1 else ''} before and {na} after, run-to-run noise is unknown and the CI "
                f"holds the trials' spread only. Record at least {runstats.MIN_RUNS} runs per side "
                f"(scripts/record.sh --side); on the 2-vCPU VM this project records on, {RECORDED_AA} "
                "shows how many a change needs (docs/comparing.md)."]
    if runstats.smallest_p(nb, na) >= runstats.ALPHA:
        return [f"Runs: {nb} before, {na} after. With so few the U test cannot reach p < 0.05: every "
                f"verdict is ~ and no change is detectable. Record at least {runstats.MIN_RUNS} runs "
                "per side."]
    lines = [f"Runs: {nb} before, {na} after. Smallest change these runs detect (80% power, p < 0.05), "
             f"and runs per side for ±{100 * target:g}%:"]
    for metric in dict.fromkeys(r["metric"] for r in rows):
        of = [r for r in rows if r["metric"] == metric and r["detectable"] is not None]
        det = sorted(r["detectable"] for r in of)
        need = needed(max(r["runs_needed"] for r in of))
        name = "ns/byte" if metric == "ns_per_byte" else metric
        lines.append(f"  {name}: {100 * det[0]:.1f}–{100 * det[-1]:.1f}% across {len(of)} cases; "
                     f"{need} runs per side for every case")
    return lines


def hardware(before, after, allow):
    """The hardware fields the runs disagree on (a kernel, a boot parameter
    such as nosmt, a governor: those are what a comparison is for, listed
    with the fingerprint, not refused)."""
    everyone = before + after

    def differs(k):
        vals = [r.env.get(k) for r in everyone]
        if k == "memory_total_kib" and all(isinstance(v, int) and v > 0 for v in vals):
            return max(vals) > min(vals) * (1 + MEMORY_TOLERANCE)
        return len({repr(v) for v in vals}) > 1
    diff = [f"{k}: " + " vs ".join(sorted({repr(r.env.get(k)) for r in everyone})) for k in HARDWARE
            if differs(k)]
    if diff and not allow:
        raise BadInput("the runs come from different hardware (" + "; ".join(diff) +
                       "); a comparison would measure the machines, not the change. "
                       "Pass --allow-different-hardware to compare anyway")
    return diff


def env_diff(before, after):
    """Fingerprint fields that differ between the sides (each side's value,
    or `varies` where its runs disagree)."""
    def flat(run):
        out = {k: v for k, v in run.env.items() if k not in ("taken_at", "sysctls", "mitigations")}
        for group in ("sysctls", "mitigations"):
            for k, v in (run.env.get(group) or {}).items():
                out[f"{group}.{k}"] = v
        return out

    def one(runs, k):
        vals = {json.dumps(flat(r).get(k), sort_keys=True) for r in runs}
        return json.loads(vals.pop()) if len(vals) == 1 else "varies"
    fb, fa = [flat(r) for r in before], [flat(r) for r in after]
    keys = sorted(set().union(*fb, *fa))
    return [(k, one(before, k), one(after, k)) for k in keys if one(before, k) != one(after, k)
            or one(before, k) == "varies"]


def settings_diff(before, after):
    out = []
    for k in ("mode", "wait", "nodelay", "placement", "trials", "direction"):
        bv = {str(c.get(k)) for r in before for c in r.cases}
        av = {str(c.get(k)) for r in after for c in r.cases}
        if bv != av:
            out.append((k, ", ".join(sorted(bv)), ", ".join(sorted(av))))
    # The timed work per case (-d or -n): a trial's length moves its p99.
    bv = {str(r.settings.get("budget")) for r in before}
    av = {str(r.settings.get("budget")) for r in after}
    if bv != av:
        out.append(("budget", ", ".join(sorted(bv)), ", ".join(sorted(av))))
    return out


def markdown(args, before, after, rows, partial, hw, fig, names):
    nb, na = len(before), len(after)
    md = [f"# Before/after: {cell(names[1])} vs {cell(names[0])}", ""]
    for which, side_runs in (("before", before), ("after", after)):
        md.append(f"- {which}: {runs(len(side_runs))}")
        for r in side_runs:
            md.append(f"  - `{cell(r.source)}`: `{cell(r.command)}` ({cell(r.env.get('git_revision', '?'))}, "
                      f"{cell(r.env.get('taken_at', '?'))})")
    md.append("")
    if hw:
        md += [f"**Warning: different hardware ({'; '.join(hw)}); compared because --allow-different-hardware.**",
               ""]
    said = resolution_lines(rows, (nb, na), args.target)
    md += ["## Verdicts", "", said[0], "", *("- " + x.strip() for x in said[1:]), "",
           "Change of the side's value (the median over its runs of each run's median trial) of time per "
           "operation, per byte for throughput: below 0 is faster. 95% CI from a two-level bootstrap (runs, "
           "then the trials of each). p: Mann-Whitney U over the runs' medians. noise: the half-width of an "
           "A/A of these runs. detectable: the change found with 80% power. Verdict faster or slower when "
           "p < 0.05, the CI excludes 0 and the change exceeds the noise; ~ means no change at this "
           "resolution.", "",
           "| case | metric | before | after | change (95% CI) | p | noise | detectable | runs for "
           f"±{100 * args.target:g}% | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = "–" if r["p"] is None else f"{r['p']:.3f}"
        noise = "unknown" if r["noise"] is None else f"±{100 * r['noise']:.1f}%"
        det = "–" if r["detectable"] is None else f"{100 * r['detectable']:.1f}%"
        need = "–" if r["runs_needed"] is None else needed(r["runs_needed"])
        metric = "ns/byte" if r["metric"] == "ns_per_byte" else r["metric"]
        md.append(f"| {cell(r['case'])} | {metric} | {shown(r['metric'], r['before'])} | "
                  f"{shown(r['metric'], r['after'])} | {pct(r['change'])} ({100 * r['ci_low']:+.1f} … "
                  f"{100 * r['ci_high']:+.1f}) | {p} | {noise} | {det} | {need} | {r['verdict']} |")
    if partial:
        md += ["", "Not in every run, so not compared: " + ", ".join(cell(x) for x in partial) + "."]
    if fig:
        md += ["", f"![change per case](figures/{os.path.basename(fig)})"]
    settings = settings_diff(before, after)
    md += ["", "## What differs in the run settings", ""]
    md += (["| setting | before | after |", "|---|---|---|"] + [f"| {k} | {cell(b)} | {cell(a)} |"
                                                                for k, b, a in settings]) if settings else ["Nothing."]
    diff = env_diff(before, after)
    md += ["", "## What differs in the fingerprint", ""]
    md += (["| field | before | after |", "|---|---|---|"] + [f"| {cell(k)} | {cell(b)} | {cell(a)} |"
                                                              for k, b, a in diff]) if diff \
        else ["Nothing but the time taken."]
    aa = []
    for which, side_runs in (("before", before), ("after", after)):
        for run in side_runs:
            for x in run.ratios:
                if x.get("knob") == "control":
                    aa.append(f"| {which} | {cell(run.label)} | {cell(x['numerator'])} | "
                              f"{sizes_label(x['size_bytes'], x['response_bytes'])} | {cell(x['metric'])} | "
                              f"{ratio_ci(x)} |")
    if aa:
        md += ["", "## Each run's A/A spread (`--control`)", "",
               "Runs made with `--control` hold a copy of their baseline as a case of its own in the same rounds: "
               "its ratio to the baseline should be 1, and its CI is what that run can tell apart inside itself. "
               "Between runs the noise above is the one that counts.", "",
               "| side | run | transport | sizes | metric | A/A ratio (95% CI) |", "|---|---|---|---|---|---|"] + aa
    md += ["", f"Made by `scripts/compare {cell(' '.join(sys.argv[1:]))}`.", ""]
    return "\n".join(md)


def main():
    args, bspecs, aspecs = parse(sys.argv[1:])
    before, after = side("before", bspecs), side("after", aspecs)
    both = {identity(r) for r in before} & {identity(r) for r in after}
    if both:
        raise BadInput(f"{' '.join(sorted(both)[0])}: on both sides; a run is a before or an after")
    kb, ka = set(before[0].workloads()), set(after[0].workloads())
    if kb != ka:
        raise BadInput(f"before measures {', '.join(sorted(kb))} and after {', '.join(sorted(ka))}: "
                       "compare runs of the same workload")
    hw = hardware(before, after, args.allow_different_hardware)
    rows, partial = compare_cases(before, after, args.target)
    if not rows:
        raise BadInput("no case is in every run of both sides (same workload, transport, sizes, depth, pairs, "
                       "rate, netns, knobs)")

    def name(specs):
        """A side's name: its spec's last part (a side directory of a set
        names the set too: runs-aa/before), and how many more specs."""
        path = os.path.normpath(specs[0])
        base = os.path.basename(path).replace(":", "-")
        if os.path.isdir(path) and not os.path.exists(os.path.join(path, "summary.json")) \
                and not os.path.exists(os.path.join(path, "env.json")):
            base = f"{os.path.basename(os.path.dirname(path))}-{base}"
        return base + (f"+{len(specs) - 1}" if len(specs) > 1 else "")
    names = (name(bspecs), name(aspecs))
    if args.check:
        return  # the wrapper's first pass: the input is good
    out = outputs.output_dir(args.output or f"compare-{names[0]}-vs-{names[1]}")
    fig = None
    if not args.no_figure:
        from scripts import plots  # matplotlib: only once the input is checked
        fig = plots.deltas(rows, outputs.subdir(out, "figures"),
                           f"after: {names[1]} ({runs(len(after))})\nbefore: {names[0]} ({runs(len(before))})")
    # The files first: a reader that goes away (`| head`) loses no result.
    doc = {"before": [r.source for r in before], "after": [r.source for r in after], "target": args.target,
           "rows": rows, "not_in_every_run": partial}
    outputs.write_text(os.path.join(out, "compare.json"), json.dumps(doc, indent=1) + "\n")
    path = os.path.join(out, "compare.md")
    outputs.write_text(path, markdown(args, before, after, rows, partial, hw, fig, names))
    said = terminal_table(rows) + [""]
    said += [textwrap.fill(line, 100) for line in resolution_lines(rows, (len(before), len(after)), args.target)]
    if any(r["metric"] == "p99" for r in rows):
        said.append("p99: the median of each run's per-trial p99s (a run's own p99, over every operation, is usually "
                    "higher).")
    settings = settings_diff(before, after)
    if settings:
        said.append("The runs' settings differ: " + "; ".join(f"{k} {b} → {a}" for k, b, a in settings)
                    + " (compare.md).")
    said.append(f"\nwrote {path}")
    try:
        print("\n".join(said))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away; the files hold everything. Quiet exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    cli.run(main)

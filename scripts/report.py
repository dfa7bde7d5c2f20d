"""Lab report from sockbench result directories or a criterion run.

usage: scripts/report RUN [RUN ...] [-o OUT_DIR]

RUN is a `sockbench <workload> --out DIR` directory, or CRITERION_DIR[:BASELINE]
(default baseline `new`). Writes OUT_DIR/report.md and OUT_DIR/figures/*.png
and *.svg; OUT_DIR defaults to the first RUN when that is a sockbench run.
The headline tables quote the inputs' numbers as they are (µs with two
decimals, ratios with three): nothing is re-measured.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402
import plots  # noqa: E402

NUM, DEN = "uds-stream", "tcp4"
ENV_FIELDS = ["hostname", "kernel_release", "kernel_cmdline", "cpu_model", "cpus_online", "cpus_allowed", "cpus_used",
              "smt_active", "virtualization", "clocksource", "clock_resolution_ns", "cpufreq_governor",
              "memory_total_kib", "sockbench_version", "git_revision", "rustc", "build_profile", "taken_at"]


def us(ns):
    return f"{ns / 1e3:.2f}"


def find(run, transport, size, response=None):
    for c in run.cases:
        if c["transport"] == transport and c["size_bytes"] == size and (response is None or c["response_bytes"] == response):
            return c
    return None


def ratio_row(run, size, metric, response=None):
    for x in run.ratios:
        if (x["numerator"], x["denominator"], x["size_bytes"], x["metric"]) == (NUM, DEN, size, metric) and \
                (response is None or x.get("response_bytes") == response):
            return x
    return None


def headline(run):
    """Per size: TCP, UDS and their paired ratio with its CI."""
    w = run.cases[0]["workload"] if run.cases else "?"
    out = [f"### {run.label} ({w})", ""]
    sizes = sorted({(c["size_bytes"], c["response_bytes"]) for c in run.cases})
    if w == "throughput":
        out += [f"| write size | {DEN} GB/s | {NUM} GB/s | {NUM}/{DEN} bytes/s (95% CI) |", "|---|---|---|---|"]
    else:
        what = {"latency": "p50 RTT µs", "connect": "p50 per connection µs"}.get(w, "p50 µs")
        out += [f"| size | {DEN} {what} | {NUM} {what} | {NUM}/{DEN} median (95% CI) | {DEN} ops/s | {NUM} ops/s |",
                "|---|---|---|---|---|---|"]
    rows = 0
    for size, resp in sizes:
        t, u = find(run, DEN, size, resp), find(run, NUM, size, resp)
        if not t or not u:
            continue
        label = plots.size_label(size) if resp == size or w == "throughput" else \
            f"{plots.size_label(size)}/{plots.size_label(resp)}"
        if w == "throughput":
            r = ratio_row(run, size, "bytes_per_s")
            ci = f"{r['ratio']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})" if r else "–"
            out.append(f"| {label} | {t['bytes_per_s'] / 1e9:.3f} | {u['bytes_per_s'] / 1e9:.3f} | {ci} |")
        else:
            r = ratio_row(run, size, "p50", resp)
            ci = f"{r['ratio']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})" if r else "–"
            ops = lambda c: f"{c['ops_per_s']:.0f}" if "ops_per_s" in c else "–"  # noqa: E731
            out.append(f"| {label} | {us(t['p50_ns'])} | {us(u['p50_ns'])} | {ci} | {ops(t)} | {ops(u)} |")
        rows += 1
    if not rows:
        out.append(f"(no {DEN} and {NUM} cases of the same size in this run)")
    return out + [""]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="sockbench run directories or CRITERION_DIR[:BASELINE]")
    p.add_argument("-o", "--output", help="directory for report.md and figures/ (default: the first run)")
    args = p.parse_args()
    try:
        runs = [load.load(r) for r in args.runs]
    except load.Fatal as e:
        load.fatal(str(e))
    out = args.output or (runs[0].source if runs[0].label.find("criterion:") < 0 else None)
    if not out:
        load.fatal("a criterion run needs -o OUT_DIR for the report")
    figdir = os.path.join(out, "figures")
    figs = [("Round-trip time by message size (p50 line, band to p99)", plots.latency_vs_size(runs, figdir)),
            (f"{NUM} ÷ {DEN} by size and workload, with 95% CIs", plots.ratio_vs_size(runs, figdir, NUM, DEN))]
    figs += [("Latency percentiles", f) for f in plots.percentile_curves(runs, figdir)]
    figs += [("Throughput by write size", plots.throughput_vs_size(runs, figdir)),
             ("CPU per message", plots.cpu_per_message(runs, figdir)),
             ("Connection rate", plots.connection_rate(runs, figdir)),
             ("Scaling with concurrent pairs", plots.pairs_scaling(runs, figdir))]
    md = [f"# sockbench lab report: {', '.join(r.label for r in runs)}", ""]
    md += ["## Sources", "", "| run | workload | revision | taken at | command |", "|---|---|---|---|---|"]
    for r in runs:
        md.append(f"| {r.label} | {', '.join(r.workloads())} | {r.env.get('git_revision', '?')} | "
                  f"{r.env.get('taken_at', '?')} | `{r.command}` |")
    md += ["", "## Headline: Unix socket vs loopback TCP", "",
           f"Medians of the runs' own figures; ratios are {NUM}/{DEN}, the median over interleaved rounds of the "
           "per-round ratio, with a 95% bootstrap CI. Below 1 (times) or above 1 (bytes/s): the Unix socket wins.", ""]
    for r in runs:
        md += headline(r)
    md += ["## Figures", ""]
    for title, f in figs:
        if f:
            md += [f"### {title}", "", f"![{title}](figures/{os.path.basename(f)})", ""]
    skipped = [t for t, f in figs if not f]
    if skipped:
        md += ["Not drawn (the inputs hold no data for them): " + "; ".join(skipped) + ".", ""]
    md += ["## Environment", ""]
    env = runs[0].env
    md += ["| field | value |", "|---|---|"] + [f"| {k} | {env.get(k)} |" for k in ENV_FIELDS if k in env]
    if env.get("sysctls"):
        md += ["", "| sysctl | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(env["sysctls"].items())]
    if env.get("mitigations"):
        md += ["", "Mitigations: " + "; ".join(f"{k}: {v}" for k, v in sorted(env["mitigations"].items()))]
    differ = sorted({k for r in runs[1:] for k in ENV_FIELDS + ["sysctls"] if r.env.get(k) != env.get(k)}
                    - {"taken_at", "cpus_used", "git_revision"})
    if differ:
        md += ["", f"**The runs' fingerprints differ in: {', '.join(differ)}.** Compare across them with care."]
    md += ["", "## Measurement warnings", ""]
    warnings = []
    for r in runs:
        for w in r.warnings:
            line = f"- {w['message']} ({w['fix']})"
            if line not in warnings:
                warnings.append(line)
    res = env.get("clock_resolution_ns")
    if res and res > 100:
        warnings.append(f"- clock resolution is {res} ns: sub-µs differences are below what the clock resolves")
    md += warnings or ["None."]
    md += ["", "## Commands", ""] + [f"- `{r.command}` (revision {r.env.get('git_revision', '?')})" for r in runs]
    md += ["", f"Made by `scripts/report {' '.join(args.runs)}`.", ""]
    path = os.path.join(out, "report.md")
    load.write_atomic(path, "\n".join(md))
    print(path)


if __name__ == "__main__":
    main()

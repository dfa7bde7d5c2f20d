"""Lab report from sockbench result directories or a criterion run.

usage: scripts/report RUN [RUN ...] [-o OUT_DIR]

RUN is a `sockbench <workload> --out DIR` directory, or CRITERION_DIR[:BASELINE]
(default baseline `new`). Writes OUT_DIR/report.md and OUT_DIR/figures/*.png
and *.svg; OUT_DIR defaults to the first RUN when that is a sockbench run.
The headline tables quote the inputs' numbers as they are (µs with two
decimals, ratios with three): nothing is re-measured.
"""
import argparse
import json
import os
import statistics
import sys

from scripts import cli, labels, outputs, resultfiles, webtable
from scripts.labels import bytes_label, cell, size_label, sizes_label

NUM, DEN = "uds-stream", "tcp4"
ENV_FIELDS = ["hostname", "kernel_release", "kernel_cmdline", "cpu_model", "cpus_online", "cpus_allowed", "cpus_used",
              "smt_active", "virtualization", "clocksource", "clock_resolution_ns", "cpufreq_governor",
              "memory_total_kib", "sockbench_version", "git_revision", "rustc", "build_profile", "taken_at"]


def us(ns):
    return f"{ns / 1e3:.2f}"


def find(run, transport, size, response=None, workload=None):
    for c in run.cases:
        if resultfiles.netns(c) == "off" and "variant" not in c and c["transport"] == transport and c["size_bytes"] == size and (response is None or c["response_bytes"] == response) \
                and (workload is None or c["workload"] == workload):
            return c
    return None


def ratio_row(run, size, metric, response=None):
    for x in run.ratios:
        if x.get("numerator_netns", "off") != "off" or x.get("denominator_netns", "off") != "off":
            continue
        if (x["numerator"], x["denominator"], x["size_bytes"], x["metric"]) == (NUM, DEN, size, metric) and \
                (response is None or x.get("response_bytes") == response):
            return x
    return None


def headline(run):
    """Per workload and size: TCP, UDS and their paired ratio with its CI
    (a criterion run holds several workloads)."""
    if any("variant" in c for c in run.cases):
        return [f"### {cell(run.label)} (nginx → gunicorn)", "", "See the nginx → gunicorn section below.", ""]
    workloads = list(dict.fromkeys(c["workload"] for c in run.cases)) or ["?"]
    return [line for w in workloads for line in _headline(run, w)]


def _headline(run, w):
    out = [f"### {cell(run.label)} ({cell(w)})", ""]
    sizes = sorted({(c["size_bytes"], c["response_bytes"]) for c in run.cases if c["workload"] == w})
    if w == "throughput":
        out += [f"| write size | {DEN} Gbit/s | {NUM} Gbit/s | {NUM}/{DEN} time per byte (95% CI) |", "|---|---|---|---|"]
    else:
        what = {"latency": "p50 RTT µs", "connect": "p50 per connection µs"}.get(w, "p50 µs")
        out += [f"| size | {DEN} {what} | {NUM} {what} | {NUM}/{DEN} median (95% CI) | {DEN} ops/s | {NUM} ops/s |",
                "|---|---|---|---|---|---|"]
    rows = 0
    for size, resp in sizes:
        t, u = find(run, DEN, size, resp, w), find(run, NUM, size, resp, w)
        if not t or not u:
            continue
        label = sizes_label(size, resp)
        if w == "throughput":
            ci = labels.ratio_ci(ratio_row(run, size, "ns_per_byte"))
            out.append(f"| {label} | {t['bytes_per_s'] * 8 / 1e9:.2f} | {u['bytes_per_s'] * 8 / 1e9:.2f} | {ci} |")
        else:
            ci = labels.ratio_ci(ratio_row(run, size, "p50", resp))
            ops = lambda c: f"{c['ops_per_s']:.0f}" if "ops_per_s" in c else "–"  # noqa: E731
            p50 = lambda c: us(c["p50_ns"]) if "p50_ns" in c else f"{us(c['mean_ns'])} (mean)"  # noqa: E731
            out.append(f"| {label} | {p50(t)} | {p50(u)} | {ci} | {ops(t)} | {ops(u)} |")
        rows += 1
    if not rows:
        out.append(f"(no {DEN} and {NUM} cases of the same size in this run)")
    return out + [""]


def label(transport, ns):
    return transport if ns == "off" else f"{transport} across {ns}"


def netns_section(runs):
    """Cases run with --netns next to the same cases on loopback, and the
    paired ratios between them."""
    runs = [r for r in runs if any(resultfiles.netns(c) != "off" for c in r.cases)]
    if not runs:
        return []
    md = ["## Across network namespaces (containers without Docker)", "",
          "Server and client each in their own network namespace, joined by a veth pair (`veth`) or through a "
          "Linux bridge (`bridge`, Docker's default network); `off` is both in one namespace over loopback. "
          "TCP crosses the link; the path-bound Unix socket is shared through the file system, as a volume "
          "shares it between containers. Medians over interleaved trials; ratios are paired by round.", "",
          "| run | workload | size | transport | p50 µs (95% CI) | p99 µs | ops/s |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        for c in r.cases:
            size = sizes_label(c["size_bytes"], c["response_bytes"])
            md.append(f"| {cell(r.label)} | {c['workload']} | {size} | {label(c['transport'], resultfiles.netns(c))} | "
                      f"{us(c['p50_ns'])} ({us(c['p50_ci_low_ns'])}–{us(c['p50_ci_high_ns'])}) | {us(c['p99_ns'])} | "
                      f"{c['ops_per_s']:.0f} |")
    md += ["", "| run | size | ratio (p50, paired by round) | median | 95% CI |", "|---|---|---|---|---|"]
    for r in runs:
        for x in r.ratios:
            if x["metric"] != "p50" or (x.get("numerator_netns", "off") == "off"):
                continue
            size = size_label(x["size_bytes"])
            md.append(f"| {cell(r.label)} | {size} | {label(x['numerator'], x['numerator_netns'])} ÷ "
                      f"{label(x['denominator'], x.get('denominator_netns', 'off'))} | {x['ratio']:.3f} | "
                      f"{labels.ci_range(x)} |")
    return md + [""]


def web_section(runs):
    runs = [r for r in runs if any("variant" in c for c in r.cases)]
    if not runs:
        return []
    md = ["## nginx → gunicorn", "",
          "wrk drives nginx, which proxies to one gunicorn over loopback TCP or over a Unix socket, with "
          "upstream keepalive off (`close`: a new upstream connection per request) or on. Medians over A B B A "
          "rounds; UDS/TCP ratios are medians of per-round ratios with 95% bootstrap CIs (below 1 for time, "
          "above 1 for req/s: the Unix socket wins).", ""]
    for r in runs:
        md += [f"### {cell(r.label)}", "", f"Settings: `{cell(json.dumps(r.settings, ensure_ascii=False))}`", ""]
        md += webtable.web_table(r.cases, r.ratios) + [""]
    return md


def layers_section(runs):
    """`sockbench explain` runs: the layers as a table, the sum checks and
    the answers the run printed."""
    md = []
    for n, r in enumerate(runs, 1):
        e = r.explained
        if not e or not e.get("layers"):
            continue
        md += [f"## Where the µs of a round trip go ({cell(r.label)})", "",
               "Each layer is the paired difference of two rungs' p50 (median over rounds, 95% CI); "
               "share: of the top rung's p50. Rows marked * are beside the chain (not in the sum).", "",
               "| placement | size | rungs | what it adds | µs | 95% CI | share |", "|---|---|---|---|---|---|---|"]
        for x in e["layers"]:
            place = ("same CPU" if x["server_cpu"] == x["client_cpu"] else "cross-CPU") + \
                f" ({x['server_cpu']}/{x['client_cpu']})"
            rungs = x["upper"] if x["lower"] is None else f"{x['upper']} − {x['lower']}"
            star = "" if x["in_sum"] else " *"
            md.append(f"| {place} | {bytes_label(x['size_bytes'])} | {rungs}{star} | {cell(x['layer'])} | {x['us']:.2f} | "
                      f"{x['ci_low_us']:.2f}–{x['ci_high_us']:.2f} | {100 * x['share']:.0f}% |")
        md.append("")
        for g in e.get("sums", []):
            ok = "they add up (within ±10%)" if g["adds_up"] else "**not within ±10%**"
            md.append(f"- {bytes_label(g['size_bytes'])}, CPUs {g['server_cpu']}/{g['client_cpu']}: the layers sum to "
                      f"{g['sum_us']:.2f} µs; {g['top']} measured {g['top_us']:.2f} µs: {ok}.")
        md += [""] + [f"> {cell(a)}" + "\n" for a in e.get("answers", [])]
    return md


def drift_section(runs):
    from scripts import plots  # matplotlib: only once arguments are checked
    rows, res = [], (0,) * 6
    for r in runs:
        for c in plots.long_runs(runs=[r]):
            pts = sorted(c["trial_points"], key=lambda t: t["round"])
            k = max(1, len(pts) // 10)
            first = statistics.median(p["p50_ns"] for p in pts[:k])
            last = statistics.median(p["p50_ns"] for p in pts[-k:])
            f99 = statistics.median(p["p99_ns"] for p in pts[:k])
            l99 = statistics.median(p["p99_ns"] for p in pts[-k:])
            # Theil–Sen: the median of the slopes between every two trials,
            # robust to the bursts of a shared host; as % of the median, over the run.
            ys = [p["p50_ns"] for p in pts]
            slopes = [(ys[j] - ys[i]) / (j - i) for i in range(len(ys)) for j in range(i + 1, len(ys))]
            trend = 100 * statistics.median(slopes) * (len(ys) - 1) / statistics.median(ys)
            rows.append(f"| {cell(r.label)} | {c['transport']} | {sum(p['n'] for p in pts):,} | {len(pts)} | "
                        f"{us(first)} → {us(last)} ({100 * (last / first - 1):+.1f}%) | "
                        f"{us(f99)} → {us(l99)} ({100 * (l99 / f99 - 1):+.1f}%) | {trend:+.1f}% |")
            res = (max(res[0], pts[0]["rss_kib"]), max(res[1], pts[-1]["rss_kib"]),
                   max(res[2], pts[0]["fds"]), max(res[3], pts[-1]["fds"]),
                   max(res[4], pts[0]["threads"]), max(res[5], pts[-1]["threads"]))
    if not rows:
        return []
    return ["## Long-run drift", "",
            "First and last tenth of the trials (median of their per-trial figures); the process's resident "
            "memory, descriptors and threads are sampled before every trial, outside the timed region.", "",
            "| run | transport | round trips | trials | p50 µs first → last | p99 µs first → last | p50 trend over the run (Theil–Sen) |",
            "|---|---|---|---|---|---|---|", *rows, "",
            f"The process before the first round: {res[0]} KiB resident, {res[2]} descriptors, {res[4]} threads; "
            f"before the last: {res[1]} KiB, {res[3]} descriptors, {res[5]} threads.", ""]


def knobs_section(runs, figdir):
    """Knob runs: each value over the knob's first, per transport and size,
    with the A/A control's CI beside it and the verdict, and one figure per
    knob."""
    from scripts import plots  # matplotlib: only once arguments are checked
    rows = [(n, x) for n, r in enumerate(runs, 1) for x in r.knob_ratios()]
    if not rows:
        return []
    out = ["## Knobs", "",
           "Each knob value over the knob's first value, the other knobs held, in the same rounds: the median of "
           "per-round ratios with its 95% bootstrap CI. A/A: the CI of the baseline's control copy over the "
           "baseline (`--control`), the run's own resolution. A knob changes a number only when its CI excludes 1 "
           "and the ratio lies outside the A/A spread; otherwise: no change at this run's resolution.", "",
           "| run | transport | sizes | knob | held | metric | ratio (95% CI) | A/A CI | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n, x in sorted(rows, key=lambda nx: (nx[0], nx[1]["knob"] != "control", nx[1]["knob"],
                                             labels.transport_rank(nx[1]["numerator"]), nx[1]["size_bytes"])):
        aa = f"{x['aa_low']:.3f}–{x['aa_high']:.3f}" if x.get("aa_low") is not None else "–"
        rate = f" @ {x['offered_per_s']}/s" if x.get("offered_per_s") else ""
        out.append(f"| {n} | {cell(x['numerator'])} | {sizes_label(x['size_bytes'], x['response_bytes'])}{rate} "
                   f"| {cell(x['knob_values'])} | {cell(x['denominator_knobs'] or '–')} | {cell(x['metric'])} | "
                   f"{labels.ratio_ci(x)} | {aa} | {cell(x['verdict'])} |")
    out.append("")
    for knob, f in plots.knob_ratios(runs, figdir):
        out += [f"![{knob}](figures/{os.path.basename(f)})", ""]
    return out


def main():
    p = cli.parser("scripts/report", __doc__)
    p.add_argument("runs", nargs="+", help="sockbench run directories or CRITERION_DIR[:BASELINE]")
    p.add_argument("-o", "--output", help="directory for report.md and figures/ (default: the first run)")
    args = p.parse_args()
    from scripts import plots  # matplotlib: only once arguments are checked
    every = [resultfiles.load(r) for r in args.runs]
    # Knob runs: the figures and tables below read each run's baseline
    # cases; the knobs section reads the rest.
    runs = [r.baseline() for r in every]
    out = args.output or (runs[0].source if runs[0].label.find("criterion:") < 0 else None)
    if not out:
        raise cli.BadInput("a criterion run needs -o OUT_DIR for the report")
    out = outputs.output_dir(out)
    figdir = outputs.subdir(out, "figures")
    figs = [("Round-trip time by message size (p50 with 95% CI, p99 dashed)", plots.latency_vs_size(runs, figdir)),
            (f"{NUM} ÷ {DEN} by size and workload, with 95% CIs", plots.ratio_vs_size(runs, figdir, NUM, DEN))]
    figs += [(f"Round-trip percentiles, {what}", f) for what, f in plots.percentile_curves(runs, figdir)]
    figs += [("Throughput by write size", plots.throughput_vs_size(runs, figdir)),
             ("CPU per message", plots.cpu_per_message(runs, figdir)),
             ("Connection rate", plots.connection_rate(runs, figdir)),
             ("Latency under load (open loop, from each request's intended send)", plots.load_vs_rate(runs, figdir, NUM, DEN)),
             ("Scaling with concurrent pairs", plots.pairs_scaling(runs, figdir)),
             ("Across network namespaces", plots.netns_latency(runs, figdir)),
             ("nginx → gunicorn", plots.web_latency(runs, figdir)),
             (f"{NUM} ÷ {DEN} at every layer measured", plots.ladder(runs, figdir, NUM, DEN)),
             ("Long-run drift", plots.drift(runs, figdir))]
    figs += plots.layers(runs, figdir)
    md = [f"# sockbench lab report: {cell(', '.join(r.label for r in runs))}", ""]
    md += ["## Sources", "", "Figures that show the same case from two runs name the run by its number here.", "",
           "| # | run | workload | revision | taken at | command |", "|---|---|---|---|---|---|"]
    for n, r in enumerate(runs, 1):
        md.append(f"| {n} | {cell(r.label)} | {cell(', '.join(r.workloads()))} | "
                  f"{cell(r.env.get('git_revision', '?'))} | {cell(r.env.get('taken_at', '?'))} | `{cell(r.command)}` |")
    md += ["", "## Headline: Unix socket vs loopback TCP", "",
           f"Medians of the runs' own figures; ratios are {NUM}/{DEN}, the median over interleaved rounds of the "
           "per-round ratio, with a 95% bootstrap CI. Every ratio divides time (per operation, or per byte for "
           "throughput): below 1, the Unix socket is faster.", ""]
    for r in runs:
        md += headline(r)
    md += netns_section(runs) + web_section(runs) + drift_section(runs) + layers_section(runs)
    md += knobs_section(every, figdir)
    md += ["## Figures", ""]
    for title, f in figs:
        if f:
            md += [f"### {title}", "", f"![{title}](figures/{os.path.basename(f)})", ""]
    skipped = [t for t, f in figs if not f]
    if skipped:
        md += ["Not drawn (the inputs hold no data for them): " + "; ".join(skipped) + ".", ""]
    md += ["## Environment", ""]
    env = runs[0].env
    md += ["| field | value |", "|---|---|"] + [f"| {k} | {cell(env.get(k))} |" for k in ENV_FIELDS if k in env]
    if env.get("sysctls"):
        md += ["", "| sysctl | value |", "|---|---|"] + [f"| {cell(k)} | {cell(v)} |"
                                                          for k, v in sorted(env["sysctls"].items())]
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
            line = f"- {cell(w['message'])} ({cell(w.get('fix', ''))})"
            if line not in warnings:
                warnings.append(line)
    res = env.get("clock_resolution_ns")
    if res and res > 100:
        warnings.append(f"- clock resolution is {res} ns: sub-µs differences are below what the clock resolves")
    md += warnings or ["None."]
    md += ["", "## Commands", ""] + [f"- `{cell(r.command)}` (revision {cell(r.env.get('git_revision', '?'))})"
                                     for r in runs]
    md += ["", f"Made by `scripts/report {cell(' '.join(args.runs))}`.", ""]
    path = os.path.join(out, "report.md")
    outputs.write_text(path, "\n".join(md))
    print(path)


if __name__ == "__main__":
    cli.run(main)

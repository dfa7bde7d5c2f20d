"""Figures against message size: round trip, UDS ÷ TCP, percentiles,
throughput, CPU per message; and the connection rate and pairs scaling."""
import matplotlib.pyplot as plt

from scripts import resultfiles, stats
from scripts.resultfiles import CASE_KEY
from scripts.labels import bytes_label, ci_pair, colour, sizes_words, transport_rank
from scripts.plots import base
from scripts.plots.base import NETNS_STYLES


def latency_vs_size(runs, out_dir):
    """RTT vs message size, one line per transport: p50 with its 95% CI over
    the trials (solid), p99 of every round trip (dashed)."""
    cases = [c for c in base.cases(runs, "latency") if "p99_ns" in c and c.get("pairs", 1) == 1]
    return base.lines_vs_size(cases, lambda c: c["p50_ns"] / 1e3,
                              lambda c: (c["p50_ci_low_ns"] / 1e3, c["p50_ci_high_ns"] / 1e3) if "p50_ci_low_ns" in c else None,
                              lambda c: c["p99_ns"] / 1e3,
                              "message size (bytes)", "round-trip time (µs, log): p50 with 95% CI, p99 dashed",
                              "Ping-pong round trip by message size", True, "latency_vs_size", out_dir)


def ratio_vs_size(runs, out_dir, num="uds-stream", den="tcp4"):
    """UDS:TCP time ratio with its CI vs size, one line per workload and
    run (throughput's bytes/s ratio is inverted into a time ratio); a
    workload that two runs hold names each line's run. The nginx →
    gunicorn runs have a figure of their own (web_latency)."""
    lines = {}
    for n, r in enumerate(runs, 1):
        if any(c.get("pairs", 1) != 1 for c in r.cases):
            continue  # concurrent pairs have their own figure
        for x in r.baseline().ratios:
            if x["numerator"] != num or x["denominator"] != den or "offered_per_s" in x or \
                    x.get("numerator_netns", "off") != "off" or x.get("denominator_netns", "off") != "off":
                continue
            w = x.get("workload") or (r.cases[0]["workload"] if r.cases else "?")
            if w.startswith("http-"):
                continue
            if x["metric"] == "p50":
                lines.setdefault((w, n), []).append((x["size_bytes"], x["ratio"], *ci_pair(x)))
            elif x["metric"] == "ns_per_byte":
                lines.setdefault(("throughput", n), []).append((x["size_bytes"], x["ratio"], *ci_pair(x)))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = {"latency": "o-", "rr": "s-", "connect": "^-", "throughput": "D-"}
    workloads = [w for w, _ in lines]
    for k, ((w, n), pts) in enumerate(sorted(lines.items())):
        pts = sorted(pts)
        # Lines nudged apart along the (log2) size axis, so that points at
        # one size from several runs do not hide each other.
        x = [p[0] * 2 ** (0.06 * (k - (len(lines) - 1) / 2)) for p in pts]
        y = [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        label = f"{w} (run {n})" if workloads.count(w) > 1 else w
        ax.errorbar(x, y, yerr=err, fmt=styles.get(w, "o-"), capsize=3, label=label)
    ax.axhline(1.0, color="black", lw=0.8)
    base.size_axis(ax, {p[0] for pts in lines.values() for p in pts})
    ax.set_xlabel("message, request or write size (bytes)")
    ax.set_ylabel(f"{num} ÷ {den}, time per operation (95% CI)")
    ax.set_title(f"{num} vs {den}: below 1, the Unix socket is faster")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return base.save(fig, out_dir, "ratio_vs_size")


def percentile_curves(runs, out_dir):
    """HdrHistogram-style percentile curves, one figure per run and latency
    size: a list of (what it shows, PNG path)."""
    out = []
    for i, r in enumerate(runs):
        sizes = sorted({k[2] for k in r.hgrm if k[0] == "latency"})
        for size in sizes:
            fig, ax = plt.subplots(figsize=(7.5, 4.5))
            drawn = 0
            for k, path in sorted(r.hgrm.items(), key=lambda kv: transport_rank(kv[0][1])):
                if k[0] != "latency" or k[2] != size:
                    continue
                values, pcts = resultfiles.read_hgrm(path)
                pts = [(1 / (1 - p), v) for v, p in zip(values, pcts) if p < 1]
                if pts:
                    # A --netns run: the mode tells its curves apart (ls by mode).
                    ns = k[CASE_KEY.index("netns")] or "off"
                    label = k[1] if ns == "off" else f"{k[1]} ({ns})"
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour(k[1]), label=label,
                            ls=NETNS_STYLES.get(ns, "-"))
                    drawn += 1
            if not drawn:
                plt.close(fig)
                continue
            ax.set_xscale("log")
            ax.set_yscale("log")
            ticks = [1, 2, 10, 100, 1000, 10000]
            ax.set_xticks(ticks)
            ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
            ax.set_xlim(1, 10000)
            ax.set_xlabel("percentile")
            ax.set_ylabel("round-trip time (µs)")
            # A run with knob lists: its curves are the baseline's.
            which = ", baseline knobs" if r.knobbed else ""
            ax.set_title(f"RTT percentiles, {bytes_label(size)} messages ({r.label}{which})")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, ncol=2)
            suffix = "" if i == 0 else "_" + r.label.replace(":", "-")
            out.append((f"{bytes_label(size)}, {r.label}", base.save(fig, out_dir, f"percentiles_{size}B{suffix}")))
    return out


def _single_pair_one_way(runs):
    return [c for c in base.cases(runs, "throughput") if c.get("direction", "one") == "one" and c.get("pairs", 1) == 1]


def throughput_vs_size(runs, out_dir):
    """Delivered Gbit/s (as the CLI and README say) vs write size, with its
    95% CI over the trials."""
    return base.lines_vs_size(_single_pair_one_way(runs), lambda c: c["bytes_per_s"] * 8 / 1e9,
                              lambda c: (c["bytes_per_s_ci_low"] * 8 / 1e9, c["bytes_per_s_ci_high"] * 8 / 1e9)
                              if "bytes_per_s_ci_low" in c else None, None,
                              "write size (bytes)", "Gbit/s delivered (log), 95% CI",
                              "One-way throughput by write size", True, "throughput_vs_size", out_dir)


def cpu_per_message(runs, out_dir):
    cases = [c for c in _single_pair_one_way(runs) if "client_cpu_ns_per_msg" in c]
    return base.lines_vs_size(cases, lambda c: (c["client_cpu_ns_per_msg"] + c["server_cpu_ns_per_msg"]) / 1e3,
                              None, None, "write size (bytes)", "CPU per message, sender + receiver (µs, log)",
                              "CPU cost per message (throughput)", True, "cpu_per_message", out_dir)


def _rate(case, point):
    """A trial's rate: operations per second, or delivered bytes per second."""
    if case["workload"] == "throughput":
        return point["delivered"] * case["size_bytes"] / (point["elapsed_ns"] / 1e9)
    # Runs before schema version 2 lack `n`; their requests served are `delivered`.
    return point.get("n", point.get("delivered", 0)) / (point["elapsed_ns"] / 1e9)


def connection_rate(runs, out_dir):
    """New connections per second (connect, request, response, close), one
    bar per transport and size, with its 95% CI over the trials."""
    cases = [c for c in base.cases(runs, "connect") if "ops_per_s" in c and c.get("pairs", 1) == 1]
    if not cases:
        return None
    cases = sorted(cases, key=lambda c: (c["size_bytes"], transport_rank(c["transport"]), c["_run"]))
    multi = len({c["size_bytes"] for c in cases}) > 1
    # A transport measured by two runs: each bar names its run.
    runs_of = {}
    for c in cases:
        runs_of.setdefault((c["transport"], c["size_bytes"]), set()).add(c["_run"])
    labels = [c["transport"] + (f"\n{sizes_words(c['size_bytes'], c['response_bytes'])}" if multi else "")
              + (f"\nrun {c['_run']}" if len(runs_of[(c["transport"], c["size_bytes"])]) > 1 else "")
              for c in cases]
    mid, err_lo, err_hi = [], [], []
    for c in cases:
        m, lo, hi = base.trial_ci(c, lambda p, c=c: _rate(c, p))
        m = c["ops_per_s"] if m is None else m
        mid.append(m / 1e3)
        err_lo.append(0 if lo is None else (m - lo) / 1e3)
        err_hi.append(0 if hi is None else (hi - m) / 1e3)
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    ax.bar(range(len(cases)), mid, yerr=[err_lo, err_hi], capsize=3, color=[colour(c["transport"]) for c in cases])
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("thousand transactions/s, 95% CI")
    size = "" if multi else f", {sizes_words(cases[0]['size_bytes'], cases[0]['response_bytes'])} each way"
    ax.set_title(f"New connection per transaction (connect, request, response, close){size}", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return base.save(fig, out_dir, "connection_rate")


def pairs_scaling(runs, out_dir):
    """Aggregate rate vs number of concurrent pairs, per workload, transport
    and size, as a multiple of the rate with the fewest pairs: the median
    over trials, with the 95% CI of each trial's rate over that median."""
    pts = {}
    for c in (c for r in runs for c in r.cases):
        if c["workload"] not in ("latency", "rr", "connect", "throughput") or c.get("direction", "one") != "one" \
                or not c.get("trial_points") or resultfiles.netns(c) != "off":
            continue
        rates = [_rate(c, p) for p in c["trial_points"]]
        pts.setdefault((c["workload"], c["transport"], c["size_bytes"], c["response_bytes"]), {})[
            c.get("pairs", 1)] = stats.median_ci(rates)
    series = {k: v for k, v in pts.items() if len(v) > 1}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    counts = set()
    for (w, t, size, resp), v in sorted(series.items(), key=lambda kv: (kv[0][0], transport_rank(kv[0][1]))):
        xs = sorted(v)
        counts.update(xs)
        fewest = v[xs[0]][0]
        ys = [v[x][0] / fewest for x in xs]
        err = [[y - v[x][1] / fewest for x, y in zip(xs, ys)], [v[x][2] / fewest - y for x, y in zip(xs, ys)]]
        # Latency and throughput apart in the legend too: line and marker.
        ax.errorbar(xs, ys, yerr=err, marker="s" if w == "throughput" else "o", capsize=3, color=colour(t),
                    linestyle="-" if w == "throughput" else "--",
                    label=f"{w} {t} {sizes_words(size, resp)}")
    ax.set_xticks(sorted(counts))
    ax.set_xlabel("concurrent pinned pairs")
    ax.set_ylabel("aggregate rate ÷ rate with the fewest pairs (95% CI)")
    ax.set_title("Scaling with concurrent pairs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return base.save(fig, out_dir, "pairs_scaling")

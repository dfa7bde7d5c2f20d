"""Figures for the lab report and the before/after comparison.

Every function takes loaded runs (resultfiles.Run), writes PNG and SVG next to
each other and returns the PNG path, or None when the inputs hold nothing
to draw. The same transport has the same colour in every figure.
"""
import math
import os
import statistics

import matplotlib

matplotlib.use("Agg")
# The same inputs give the same files, byte for byte: no date in the SVG
# metadata, and the SVG's element ids drawn from a fixed salt.
matplotlib.rcParams["svg.hashsalt"] = "sockbench"
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from scripts import outputs, resultfiles, stats  # noqa: E402
from scripts.resultfiles import CASE_KEY  # noqa: E402
from scripts.labels import (ORDER, bytes_label, ci_pair, colour, rate_words, size_label, sizes_words,  # noqa: E402
                            transport_rank)


def _save(fig, out_dir, name):
    """PNG and SVG of `fig` in `out_dir`, written beside and renamed into
    place: never through a link planted there."""
    out_dir = outputs.subdir(os.path.dirname(out_dir) or ".", os.path.basename(out_dir))
    png = os.path.join(out_dir, name + ".png")
    outputs.replace_file(png, lambda tmp: fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight",
                                                     metadata={"Software": None}))
    outputs.replace_file(os.path.join(out_dir, name + ".svg"),
                        lambda tmp: fig.savefig(tmp, format="svg", bbox_inches="tight", metadata={"Date": None}))
    plt.close(fig)
    return png


def _cases(runs, workload):
    """Baseline cases of `workload` (no knob values, no A/A copy: the knob
    figures show those) with both ends in one namespace (the --netns cases
    have their own figure), each with `_run`, its run's 1-based number."""
    return [dict(c, _run=n) for n, r in enumerate(runs, 1) for c in r.baseline().cases
            if c["workload"] == workload and resultfiles.netns(c) == "off"]


# A --netns mode's line style, in every figure that shows several.
NETNS_STYLES = {"off": "-", "veth": "--", "bridge": ":"}

# A line's marker by the rank of its run among the runs of its transport.
MARKERS = "osD^v"


def _by_transport(cases):
    """One line per transport and run, in the transports' order: (label,
    transport, marker, cases). The label names the run where a transport
    comes from more than one, so two runs are never joined into one line."""
    out = {}
    for c in cases:
        out.setdefault((c["transport"], c.get("_run", 0)), []).append(c)
    keys = sorted(out, key=lambda k: (transport_rank(k[0]), k[1]))
    lines = []
    for t, n in keys:
        mine = [k for k in keys if k[0] == t]
        label = f"{t} (run {n})" if len(mine) > 1 else t
        lines.append((label, t, MARKERS[mine.index((t, n)) % len(MARKERS)], out[(t, n)]))
    return lines


def _size_axis(ax, sizes):
    """Log2 size axis with a tick at every measured size, labelled in the
    units people write (64, 4K, 1M) and no minor ticks."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(size_label))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _trial_ci(case, value):
    """Median and 95% CI over a case's trials of `value(trial point)`."""
    xs = [value(p) for p in case.get("trial_points", [])]
    return stats.median_ci(xs) if xs else (None, None, None)


def _plain_log_y(ax):
    """A log y axis labelled in plain numbers (6, 20, 100), not "6×10¹",
    with ticks at 1, 2 and 5 of every decade: never a lone tick."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(plain)


def _lines_vs_size(cases, y, ci, dashed, xlabel, ylabel, title, ylog, name, out_dir):
    """One line per transport of `y(case)` against size, with its 95% CI as
    error bars (`ci(case)` → (low, high), or None where the case has no CI), and a thin dashed line of
    `dashed(case)` when given."""
    sizes = {c["size_bytes"] for c in cases}
    if len(sizes) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, t, marker, cs in _by_transport(cases):
        cs = sorted(cs, key=lambda c: c["size_bytes"])
        x = [c["size_bytes"] for c in cs]
        ys = [y(c) for c in cs]
        if ci:
            lo_hi = [ci(c) or (v, v) for c, v in zip(cs, ys)]
            err = [[max(0.0, v - lh[0]) for v, lh in zip(ys, lo_hi)],
                   [max(0.0, lh[1] - v) for v, lh in zip(ys, lo_hi)]]
            ax.errorbar(x, ys, yerr=err, marker=marker, ms=4, capsize=2, color=colour(t), label=label)
        else:  # no CI: a plain line, and a legend without error bars
            ax.plot(x, ys, marker=marker, ms=4, color=colour(t), label=label)
        if dashed:
            ax.plot(x, [dashed(c) for c in cs], color=colour(t), lw=0.8, ls="--")
    _size_axis(ax, sizes)
    if ylog:
        _plain_log_y(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if dashed:
        # Room above the highest dashed line for the legend.
        top = max(dashed(c) for c in cases)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, max(hi, top * (2.5 if ylog else 1.3)))
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    return _save(fig, out_dir, name)


def latency_vs_size(runs, out_dir):
    """RTT vs message size, one line per transport: p50 with its 95% CI over
    the trials (solid), p99 of every round trip (dashed)."""
    cases = [c for c in _cases(runs, "latency") if "p99_ns" in c and c.get("pairs", 1) == 1]
    return _lines_vs_size(cases, lambda c: c["p50_ns"] / 1e3,
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
    _size_axis(ax, {p[0] for pts in lines.values() for p in pts})
    ax.set_xlabel("message, request or write size (bytes)")
    ax.set_ylabel(f"{num} ÷ {den}, time per operation (95% CI)")
    ax.set_title(f"{num} vs {den}: below 1, the Unix socket is faster")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "ratio_vs_size")


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
            out.append((f"{bytes_label(size)}, {r.label}", _save(fig, out_dir, f"percentiles_{size}B{suffix}")))
    return out


def _single_pair_one_way(runs):
    return [c for c in _cases(runs, "throughput") if c.get("direction", "one") == "one" and c.get("pairs", 1) == 1]


def throughput_vs_size(runs, out_dir):
    """Delivered Gbit/s (as the CLI and README say) vs write size, with its
    95% CI over the trials."""
    return _lines_vs_size(_single_pair_one_way(runs), lambda c: c["bytes_per_s"] * 8 / 1e9,
                          lambda c: (c["bytes_per_s_ci_low"] * 8 / 1e9, c["bytes_per_s_ci_high"] * 8 / 1e9)
                          if "bytes_per_s_ci_low" in c else None, None,
                          "write size (bytes)", "Gbit/s delivered (log), 95% CI",
                          "One-way throughput by write size", True, "throughput_vs_size", out_dir)


def cpu_per_message(runs, out_dir):
    cases = [c for c in _single_pair_one_way(runs) if "client_cpu_ns_per_msg" in c]
    return _lines_vs_size(cases, lambda c: (c["client_cpu_ns_per_msg"] + c["server_cpu_ns_per_msg"]) / 1e3,
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
    cases = [c for c in _cases(runs, "connect") if "ops_per_s" in c and c.get("pairs", 1) == 1]
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
        m, lo, hi = _trial_ci(c, lambda p, c=c: _rate(c, p))
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
    return _save(fig, out_dir, "connection_rate")


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
        base = v[xs[0]][0]
        ys = [v[x][0] / base for x in xs]
        err = [[y - v[x][1] / base for x, y in zip(xs, ys)], [v[x][2] / base - y for x, y in zip(xs, ys)]]
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
    return _save(fig, out_dir, "pairs_scaling")


# A verdict's colour and its words in the legend.
VERDICTS = {"faster": ("#2ca02c", "faster"), "slower": ("#d62728", "slower"),
            "~": ("#9a9a9a", "~ (no change at this resolution)"), "no verdict": ("#c9c9c9", "no verdict (one run per side)")}


def deltas(rows, out_dir, title):
    """Before/after: change of each case's median, with its 95% CI, coloured
    by verdict. Time per operation (per byte for throughput): left of 0 is
    faster."""
    rows = [r for r in rows if r["change"] is not None and not math.isnan(r["change"])]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.32 * len(rows) + 1.4)))
    y = list(range(len(rows)))[::-1]
    ch = [100 * r["change"] for r in rows]
    lo = [100 * (r["change"] - r["ci_low"]) for r in rows]
    hi = [100 * (r["ci_high"] - r["change"]) for r in rows]
    ax.barh(y, ch, xerr=[lo, hi], color=[VERDICTS[r["verdict"]][0] for r in rows], capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['case']} ({'ns/byte' if r['metric'] == 'ns_per_byte' else r['metric']})"
                        for r in rows], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("change of time per operation, after vs before (%), 95% CI; left of 0: faster")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.patches import Patch
    shown = [VERDICTS[v] for v in VERDICTS if any(r["verdict"] == v for r in rows)]
    ax.legend(handles=[Patch(color=c, label=words) for c, words in shown], fontsize=7, loc="best")
    return _save(fig, out_dir, "delta")


HATCH = {"off": "", "veth": "//", "bridge": "xx"}


def _p50_bars(labels, series, cell, ylabel, title, name, out_dir):
    """Grouped bars of p50 with its 95% CI: one group per label, one bar per
    series (transport, hatch, legend), coloured by transport; `cell(i, j)`
    is the case of group i and series j, or None."""
    if not labels or not series:
        return None
    fig, ax = plt.subplots(figsize=(min(13.0, max(7.5, 1.2 * len(labels) * max(1, len(series)) / 2)), 4.5))
    width = 0.8 / len(series)
    for j, (transport, hatch, legend) in enumerate(series):
        cs = [(i, c) for i, c in ((i, cell(i, j)) for i in range(len(labels))) if c]
        ys = [c["p50_ns"] / 1e3 for _, c in cs]
        err = [[y - c["p50_ci_low_ns"] / 1e3 for y, (_, c) in zip(ys, cs)],
               [c["p50_ci_high_ns"] / 1e3 - y for y, (_, c) in zip(ys, cs)]]
        ax.bar([i + (j - (len(series) - 1) / 2) * width for i, _ in cs], ys, width, color=colour(transport),
               hatch=hatch, edgecolor="black", lw=0.4, label=legend, yerr=err, capsize=2)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, name)


def netns_latency(runs, out_dir):
    """p50 with its CI per (workload, size), one bar per transport and
    --netns mode: loopback, across veth, through a bridge."""
    # Only runs that crossed namespaces (their `off` cases are the baseline).
    cases = [c for r in runs if any(resultfiles.netns(c) != "off" for c in r.cases)
             for c in r.cases if "p50_ci_low_ns" in c and "variant" not in c]
    if not cases:
        return None
    groups = sorted({(c["workload"], c["size_bytes"], c["response_bytes"]) for c in cases})
    modes = [m for m in HATCH if any(resultfiles.netns(c) == m for c in cases)]
    keys = [(t, m) for t in ORDER for m in modes if any(c["transport"] == t and resultfiles.netns(c) == m for c in cases)]
    idx = {(c["workload"], c["size_bytes"], c["response_bytes"], c["transport"], resultfiles.netns(c)): c for c in cases}
    return _p50_bars([f"{w} {sizes_words(s, rs)}" for w, s, rs in groups],
                     [(t, HATCH[m], f"{t} ({m})") for t, m in keys], lambda i, j: idx.get(groups[i] + keys[j]),
                     "p50 per operation (µs), 95% CI", "Across network namespaces: loopback, veth, bridge",
                     "netns_latency", out_dir)


def web_latency(runs, out_dir):
    """nginx → gunicorn: p50 with its CI per (body, app work), one bar per
    variant: TCP or Unix socket upstream, keepalive off or on. A body and
    app work two runs measured give a group per run, named with its run
    and rounds (the figure never shows one run's bars as another's)."""
    cases = [dict(c, _run=n) for n, r in enumerate(runs, 1) for c in r.cases if "variant" in c]
    if not cases:
        return None
    groups = sorted({(c["size_bytes"], c["app_work_us"], c["_run"]) for c in cases})
    series = [("tcp4", "", "tcp", "TCP upstream"), ("uds-stream", "", "uds", "Unix socket upstream"),
              ("tcp4", "//", "tcp-ka", "TCP, keepalive"), ("uds-stream", "//", "uds-ka", "Unix socket, keepalive")]
    idx = {(c["size_bytes"], c["app_work_us"], c["_run"], c["variant"]): c for c in cases}

    def name(b, w, n):
        twice = sum(1 for g in groups if g[:2] == (b, w)) > 1
        rounds = max((c.get("trials", 0) for c in cases if c["_run"] == n), default=0)
        return f"{bytes_label(b)}, app {w} µs" + (f"\nrun {n}, {rounds} rounds" if twice else "")
    return _p50_bars([name(*g) for g in groups], [(t, h, legend) for t, h, _, legend in series],
                     lambda i, j: idx.get(groups[i] + (series[j][2],)),
                     "request latency p50 (µs) at fixed concurrency, 95% CI",
                     "nginx → gunicorn: upstream over TCP or a Unix socket", "web_latency", out_dir)


def _layer_label(workload, size, netns):
    """A ladder bar's name, layer first: `socket: latency 64 B`,
    `containers (bridge): rr 512 B/16 KiB`, `nginx → gunicorn: keep-alive, app 100 µs, 1 KiB`."""
    if workload.startswith("http-"):
        parts = workload.split("-")  # http-keepalive-app100us
        how = "keep-alive" if parts[1] == "keepalive" else "new connection"
        app = parts[2][3:].replace("us", " µs") if len(parts) > 2 else "?"
        return f"nginx → gunicorn: {how}, app {app}, {size}"
    layer = "socket" if netns == "off" else f"containers ({netns})"
    return f"{layer}: {workload} {size}"


def _half_knee(run, rows, num, den):
    """A load run's ratio rows of one size: the row at the highest offered
    rate up to half the lowest rate at which either transport saturated
    (well below the knee, where a tail is not yet a queue), or at the
    highest rate when neither saturated; None without rates."""
    sat = [c["offered_per_s"] for c in run.cases if c["transport"] in (num, den) and c.get("saturated")
           and c["size_bytes"] == rows[0]["size_bytes"]] if rows else []
    limit = min(sat) / 2 if sat else float("inf")
    ok = [x for x in rows if x.get("offered_per_s") and x["offered_per_s"] <= limit]
    return max(ok, key=lambda x: x["offered_per_s"]) if ok else None


def ladder(runs, out_dir, num="uds-stream", den="tcp4"):
    """One UDS ÷ TCP p50 ratio per question the inputs answer (same --netns
    on both sides), one bar each with its CI: from syscalls up to nginx.
    A load sweep gives one bar per size, at the highest rate up to half
    of the first saturated one, named with that rate; a run of concurrent
    pairs is named by its pairs; a question two runs answer is drawn once,
    from the run with more rounds."""
    rows = []
    for r in runs:
        r = r.baseline()
        mine = [x for x in r.ratios if (x["numerator"], x["denominator"], x["metric"]) == (num, den, "p50")
                and x.get("numerator_netns", "off") == x.get("denominator_netns", "off")]
        w = r.cases[0]["workload"] if r.cases else "?"
        if w == "load":
            sizes = sorted({(x["size_bytes"], x.get("response_bytes")) for x in mine})
            mine = [x for x in (_half_knee(r, [y for y in mine if (y["size_bytes"], y.get("response_bytes"))
                                                          == sz], num, den) for sz in sizes) if x]
        pairs = max((c.get("pairs", 1) for c in r.cases), default=1)
        for x in mine:
            name = _layer_label(x.get("workload") or w, sizes_words(x["size_bytes"], x.get("response_bytes")),
                                x.get("numerator_netns", "off"))
            if x.get("offered_per_s"):
                name += f" @ {rate_words(x['offered_per_s'])}"
            if pairs > 1:
                name += f", {pairs} pairs at once"
            rows.append((name, x["ratio"], *ci_pair(x), x.get("rounds") or 0))
    if not rows:
        return None
    # One bar per question: where two runs answer the same one, the run
    # with more rounds (the first of equals) gives it.
    best = {}
    for r in rows:
        if r[0] not in best or r[4] > best[r[0]][4]:
            best[r[0]] = r
    dropped = len(rows) - len(best)
    rows = [r[:4] for r in rows if best[r[0]] is r]
    order = ("socket", "containers", "nginx")
    rows.sort(key=lambda r: next(i for i, p in enumerate(order) if r[0].startswith(p)))
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.3 * len(rows) + 1.4)))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r[1] for r in rows], xerr=[[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]],
            color=colour(num), capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlim(0, max(1.2, max(r[3] for r in rows) * 1.05))
    load = "\nload: at the highest offered rate up to half of the first rate either saturated at" \
        if any(" @ " in r[0] for r in rows) else ""
    twice = f"\n{dropped} answered by two runs: the one with more rounds" if dropped else ""
    ax.set_xlabel(f"{num} ÷ {den}, p50 time (95% CI): below 1, the Unix socket is faster{load}{twice}")
    ax.set_title("How much of the Unix socket's lead survives, layer by layer")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, out_dir, "ladder")


def long_runs(runs, min_trials=50):
    """Latency cases with enough trials to show drift (a soak run, not a
    headline run of 10-20 rounds), whose trials carry the process's figures."""
    return [c for r in runs for c in r.cases
            if len(c.get("trial_points", [])) >= min_trials and "rss_kib" in c["trial_points"][0]
            and all(p.get("p50_ns", 0) > 0 for p in c["trial_points"])]


def drift(runs, out_dir):
    """Long runs: p50 and p99 of every trial, round by round, and this
    process's resident memory and descriptors before each round."""
    cases = long_runs(runs)
    if not cases:
        return None
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    for c in cases:
        pts = sorted(c["trial_points"], key=lambda t: t["round"])
        xs = [p["round"] for p in pts]
        t = c["transport"]
        a1.plot(xs, [p["p50_ns"] / 1e3 for p in pts], color=colour(t), label=f"{t} p50")
        a1.plot(xs, [p["p99_ns"] / 1e3 for p in pts], color=colour(t), ls="--", lw=0.8, label=f"{t} p99")
    first = sorted(cases[0]["trial_points"], key=lambda t: t["round"])
    xs = [p["round"] for p in first]
    a2.plot(xs, [p["rss_kib"] / 1024 for p in first], color="black", label="resident memory (MiB)")
    a2b = a2.twinx()
    a2b.plot(xs, [p["fds"] for p in first], color="#7f7f7f", ls=":", label="open descriptors")
    per = statistics.median([p["n"] for p in first])
    a1.set_ylabel("RTT per trial (µs, log)")
    _plain_log_y(a1)
    a1.set_title("Drift over the run: every trial's p50 and p99")
    a1.grid(True, which="both", alpha=0.3)
    # Room above the highest trial for the legend, which hid the lines.
    lo, hi = a1.get_ylim()
    a1.set_ylim(lo, hi * 2.2)
    a1.legend(fontsize=7, ncol=4, loc="upper center")
    a2.set_xlabel(f"round (one trial of every case each, {per:,.0f} operations per trial)")
    a2.set_ylabel("MiB resident")
    a2b.set_ylabel("descriptors")
    # From 0, and a quarter above the highest value: a flat line is seen
    # as flat, not drawn on the frame.
    a2.set_ylim(0, max(p["rss_kib"] / 1024 for p in first) * 1.25)
    # Descriptors at half height, apart from the memory line, in whole numbers.
    a2b.set_ylim(0, max(p["fds"] for p in first) * 2)
    a2b.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a2.grid(True, alpha=0.3)
    a2.legend(loc="lower left", fontsize=7)
    a2b.legend(loc="lower right", fontsize=7)
    return _save(fig, out_dir, "drift")


def load_vs_rate(runs, out_dir, num="uds-stream", den="tcp4"):
    """`sockbench load`: latency from the intended send against the offered
    rate, one panel per request/response size: p50 (solid, with its 95% CI),
    p99 (dashed) and p99.9 (dotted) per transport, log axes, a thin vertical
    line at the first rate past each transport's knee; and beside it the
    UDS ÷ TCP ratio of the p99 at each rate with its CI."""
    cases = [c for c in _cases(runs, "load") if "offered_per_s" in c]
    if len({c["offered_per_s"] for c in cases}) < 2:
        return None
    sizes = sorted({(c["size_bytes"], c["response_bytes"]) for c in cases})
    fig, axes = plt.subplots(len(sizes), 2, figsize=(11, 4.0 * len(sizes)), squeeze=False)
    for row, (size, resp) in enumerate(sizes):
        ax, rax = axes[row]
        for label, t, _, cs in _by_transport([c for c in cases
                                              if (c["size_bytes"], c["response_bytes"]) == (size, resp)]):
            cs = sorted(cs, key=lambda c: c["offered_per_s"])
            x = [c["offered_per_s"] for c in cs]
            p50 = [c["p50_ns"] / 1e3 for c in cs]
            err = [[max(0.0, v - c["p50_ci_low_ns"] / 1e3) for v, c in zip(p50, cs)],
                   [max(0.0, c["p50_ci_high_ns"] / 1e3 - v) for v, c in zip(p50, cs)]]
            ax.errorbar(x, p50, yerr=err, marker="o", ms=4, capsize=2, color=colour(t), label=f"{label} p50")
            ax.plot(x, [c["p99_ns"] / 1e3 for c in cs], color=colour(t), ls="--", marker=".", label=f"{label} p99")
            ax.plot(x, [c["p999_ns"] / 1e3 for c in cs], color=colour(t), ls=":", label=f"{label} p99.9")
            past = [c["offered_per_s"] for c in cs if c.get("saturated")]
            if past:  # the first rate past the knee, named at the top
                ax.axvline(min(past), color=colour(t), lw=0.8, alpha=0.6)
                ax.annotate(f"{t} saturates", (min(past), 1), xycoords=("data", "axes fraction"),
                            xytext=(-2, -4), textcoords="offset points", rotation=90, ha="right", va="top",
                            fontsize=7, color=colour(t))
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("offered requests/s (log)")
        ax.set_ylabel("latency from intended send (µs, log)")
        words = sizes_words(size, resp)
        ax.set_title(f"{words} request/response: latency", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        pts = sorted((x["offered_per_s"], x["ratio"], *ci_pair(x)) for r in runs for x in r.ratios
                     if x.get("offered_per_s") and x["metric"] == "p99" and x["numerator"] == num
                     and x["denominator"] == den and (x["size_bytes"], x["response_bytes"]) == (size, resp)
                     and x.get("numerator_netns", "off") == "off")
        if pts:
            rax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                         yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], fmt="o-", capsize=3)
        rax.axhline(1.0, color="black", lw=0.8)
        rax.set_xscale("log")
        rax.set_yscale("log")
        rax.set_xlabel("offered requests/s (log)")
        rax.set_ylabel(f"p99: {num} ÷ {den} (95% CI, log)")
        rax.set_title(f"{words}: p99 ratio, below 1 the Unix socket's tail is shorter", fontsize=10)
        rax.grid(True, alpha=0.3)
    # One legend for every panel, below them: inside, it hid the low rates' tails.
    handles, labels = axes[0][0].get_legend_handles_labels()
    rank = {"p50": 0, "p99": 1, "p99.9": 2}
    pairs = sorted(zip(labels, handles), key=lambda lh: (transport_rank(lh[0].split()[0]), lh[0].rsplit(" ", 1)[0],
                                                         rank[lh[0].rsplit(" ", 1)[1]]))
    fig.legend([h for _, h in pairs], [lab for lab, _ in pairs], loc="lower center", ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle("Latency under open-loop load", fontsize=11)
    fig.tight_layout(rect=(0, 0.1 / len(sizes), 1, 1))
    return _save(fig, out_dir, "load_vs_rate")


# A ratio's metric in words, for an axis.
METRIC_WORDS = {"p50": "p50 time", "mean": "mean time", "p99": "p99 time",
                "ns_per_byte": "time per byte (the rate's inverse)"}


def knob_ratios(runs, out_dir):
    """One figure per knob (sysctl, socket option, mode, placement): each
    value's ratio over the knob's first, per transport and size, with its
    95% CI, and the A/A control's CI of the same transport and size drawn
    as a grey band behind it (the run's resolution), the other knobs at
    their first values (one row per question; the report's table has the
    other combinations). Returns [(knob, png)]."""
    out = []
    rows = [(r, x) for r in runs for x in r.knob_ratios() if x["knob"] != "control"]
    for knob in sorted({x["knob"] for _, x in rows}):
        mine = [(r, x) for r, x in rows if x["knob"] == knob]
        held_elsewhere = sum(1 for _, x in mine if x["denominator_knobs"])
        mine = [(r, x) for r, x in mine if not x["denominator_knobs"]]
        mine.sort(key=lambda rx: (transport_rank(rx[1]["numerator"]), rx[1]["size_bytes"],
                                  rx[1].get("offered_per_s") or 0))
        if not mine:
            continue
        several = len({id(r) for r, _ in mine}) > 1
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(mine) + 1.8))
        labels = []
        for i, (r, x) in enumerate(mine):
            if x.get("aa_low") is not None:
                ax.add_patch(matplotlib.patches.Rectangle((x["aa_low"], i - 0.35), x["aa_high"] - x["aa_low"], 0.7,
                                                          color="0.85", zorder=1, lw=0))
            lo, hi = ci_pair(x)
            ax.errorbar([x["ratio"]], [i], xerr=[[x["ratio"] - lo], [hi - x["ratio"]]],
                        fmt="o", color=colour(x["numerator"]), capsize=3, zorder=3)
            rate = f" @ {rate_words(x['offered_per_s'])}" if x.get("offered_per_s") else ""
            run_no = f" (run {runs.index(r) + 1})" if several else ""
            value = x["knob_values"].split(" / ")[0]
            labels.append(f"{x['numerator']} {sizes_words(x['size_bytes'], x['response_bytes'])}{rate}: "
                          f"{value}  {x['verdict']}{run_no}")
        ax.axvline(1.0, color="0.3", lw=0.8, zorder=2)
        ax.set_yticks(range(len(mine)))
        ax.set_yticklabels(labels)
        ax.invert_yaxis()
        metric = mine[0][1]["metric"]
        first = mine[0][1]["knob_values"].split(" / ")[1]
        others = f"\nthe other knobs at their first values ({held_elsewhere} more rows in the report's table)" \
            if held_elsewhere else ""
        ax.set_xlabel(f"{METRIC_WORDS.get(metric, metric)}: ratio over {first} (95% CI); "
                      f"grey: the A/A control's CI{others}")
        ax.set_title(f"{knob}: each value over the first (below 1: faster)")
        ax.grid(axis="x", alpha=0.3)
        out.append((knob, _save(fig, out_dir, f"knob_{knob.replace('.', '_')}")))
    return out


def _place(server_cpu, client_cpu):
    return f"same CPU ({server_cpu}/{client_cpu})" if server_cpu == client_cpu \
        else f"cross-CPU ({server_cpu}/{client_cpu})"


def layers(runs, out_dir):
    """`sockbench explain`: where the µs of a round trip go, one panel per
    placement and size. Each layer is a bar starting where the layers below
    it end (a waterfall: the floor, then each rung's paired difference over
    the rung below, negative ones drawn leftwards), with its 95% CI; a black
    line marks the top rung measured whole. Returns [(title, png)]."""
    out = []
    for n, r in enumerate(runs, 1):
        e = r.explained
        if not e or not e.get("layers"):
            continue
        groups = e.get("sums", [])
        cols = 2 if len(groups) > 1 else 1
        rows = math.ceil(len(groups) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.2 * rows), squeeze=False)
        for ax, g in zip(axes.flat, groups):
            mine = [x for x in e["layers"] if x["in_sum"] and (x["size_bytes"], x["knobs"], x["server_cpu"],
                    x["client_cpu"]) == (g["size_bytes"], g["knobs"], g["server_cpu"], g["client_cpu"])]
            start, labels = 0.0, []
            for i, x in enumerate(mine):
                name = x["upper"] if x["lower"] is None else f"{x['upper']} − {x['lower']}"
                labels.append(f"{name}\n{x['layer']}")
                ax.barh(i, x["us"], left=start, color=colour(x["upper"]), height=0.6, zorder=2)
                end = start + x["us"]
                ax.errorbar([end], [i], xerr=[[x["us"] - x["ci_low_us"]], [x["ci_high_us"] - x["us"]]],
                            fmt="none", ecolor="0.2", capsize=3, zorder=3)
                # Right of the bar and of its CI, so neither hides the figure.
                ax.text(max(start, end, start + x["ci_high_us"]), i, f"  {x['us']:+.2f} µs", va="center",
                        fontsize=7, zorder=4)
                start = end
            ax.axvline(g["top_us"], color="black", lw=1, zorder=3)
            ax.set_yticks(range(len(mine)))
            ax.set_yticklabels(labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("µs per round trip (p50), with 95% CIs")
            check = "adds up" if g["adds_up"] else "does NOT add up (±10%)"
            ax.set_title(f"{_place(g['server_cpu'], g['client_cpu'])}, {bytes_label(g['size_bytes'])}: "
                         f"{g['top']} {g['top_us']:.1f} µs (line); sum {check}", fontsize=9)
            ax.grid(axis="x", alpha=0.3, zorder=0)
        for ax in list(axes.flat)[len(groups):]:
            ax.set_visible(False)
        fig.tight_layout()
        suffix = f"_{n}" if len(runs) > 1 else ""
        title = "Where the µs of a round trip go" + (f" (run {n})" if len(runs) > 1 else "")
        out.append((title, _save(fig, out_dir, f"layers{suffix}")))
    return out

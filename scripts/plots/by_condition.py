"""Figures of a change of condition: the offered rate (open-loop load), a knob's
values, before/after runs (compare's deltas), and time (a soak's drift)."""
import math
import statistics

import matplotlib
import matplotlib.pyplot as plt

from scripts.labels import ci_pair, colour, rate_words, sizes_words, transport_rank
from scripts.plots import base


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
    return base.save(fig, out_dir, "delta")


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
    base.plain_log_y(a1)
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
    a2.set_ylim(0, max(max(p["rss_kib"] / 1024 for p in first) * 1.25, 1))
    # Descriptors at half height, apart from the memory line, in whole numbers.
    a2b.set_ylim(0, max(max(p["fds"] for p in first) * 2, 1))
    a2b.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a2.grid(True, alpha=0.3)
    a2.legend(loc="lower left", fontsize=7)
    a2b.legend(loc="lower right", fontsize=7)
    return base.save(fig, out_dir, "drift")


def load_vs_rate(runs, out_dir, num="uds-stream", den="tcp4"):
    """`sockbench load`: latency from the intended send against the offered
    rate, one panel per request/response size: p50 (solid, with its 95% CI),
    p99 (dashed) and p99.9 (dotted) per transport, log axes, a thin vertical
    line at the first rate past each transport's knee; and beside it the
    UDS ÷ TCP ratio of the p99 at each rate with its CI."""
    cases = [c for c in base.cases(runs, "load") if "offered_per_s" in c]
    if len({c["offered_per_s"] for c in cases}) < 2:
        return None
    sizes = sorted({(c["size_bytes"], c["response_bytes"]) for c in cases})
    fig, axes = plt.subplots(len(sizes), 2, figsize=(11, 4.0 * len(sizes)), squeeze=False)
    for row, (size, resp) in enumerate(sizes):
        ax, rax = axes[row]
        for label, t, _, cs in base.by_transport([c for c in cases
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
        # One line per run (its baseline: no knob copies), never two joined.
        lines = []
        for n, r in enumerate(runs, 1):
            pts = sorted((x["offered_per_s"], x["ratio"], *ci_pair(x)) for x in r.baseline().ratios
                         if x.get("offered_per_s") and x["metric"] == "p99" and x["numerator"] == num
                         and x["denominator"] == den and (x["size_bytes"], x["response_bytes"]) == (size, resp)
                         and x.get("numerator_netns", "off") == "off")
            if pts:
                lines.append((n, pts))
        for k, (n, pts) in enumerate(lines):
            rax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                         yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], capsize=3,
                         fmt=base.MARKERS[k % len(base.MARKERS)] + "-", label=f"run {n}")
        if len(lines) > 1:
            rax.legend(fontsize=7)
        rax.axhline(1.0, color="black", lw=0.8)
        rax.set_xscale("log")
        rax.set_yscale("log")
        rax.set_xlabel("offered requests/s (log)")
        rax.set_ylabel(f"p99: {num} ÷ {den} (95% CI, log)")
        rax.set_title(f"{words}: p99 ratio, below 1 the Unix socket's tail is shorter", fontsize=10)
        rax.grid(True, alpha=0.3)
    # One legend for every panel, below them: inside, it hid the low rates' tails.
    seen = {}
    for row in axes:  # every panel's lines: a run may hold only some sizes
        for h, lab in zip(*row[0].get_legend_handles_labels()):
            seen.setdefault(lab, h)
    rank = {"p50": 0, "p99": 1, "p99.9": 2}
    pairs = sorted(seen.items(), key=lambda lh: (transport_rank(lh[0].split()[0]), lh[0].rsplit(" ", 1)[0],
                                                 rank[lh[0].rsplit(" ", 1)[1]]))
    fig.legend([h for _, h in pairs], [lab for lab, _ in pairs], loc="lower center", ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle("Latency under open-loop load", fontsize=11)
    fig.tight_layout(rect=(0, 0.1 / len(sizes), 1, 1))
    return base.save(fig, out_dir, "load_vs_rate")


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
        # Ratios over more than a decade (shm-spin on one CPU: 23×, the rest
        # under 1): a log axis, so that the small ones are not a heap at 0.
        ends = [v for _, x in mine for v in ci_pair(x) if v > 0]
        logx = bool(ends) and max(ends) / min(ends) > 10
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_yticks(range(len(mine)))
        ax.set_yticklabels(labels)
        ax.invert_yaxis()
        metric = mine[0][1]["metric"]
        first = mine[0][1]["knob_values"].split(" / ")[1]
        others = f"\nthe other knobs at their first values ({held_elsewhere} more rows in the report's table)" \
            if held_elsewhere else ""
        # The grey bands only where the run had an A/A control to draw.
        grey = "; grey: the A/A control's CI" if any(x.get("aa_low") is not None for _, x in mine) else ""
        log = ", log" if logx else ""
        ax.set_xlabel(f"{METRIC_WORDS.get(metric, metric)}: ratio over {first} (95% CI{log}){grey}{others}")
        ax.set_title(f"{knob}: each value over the first (below 1: faster)")
        ax.grid(axis="x", alpha=0.3)
        out.append((knob, base.save(fig, out_dir, f"knob_{knob.replace('.', '_')}")))
    return out

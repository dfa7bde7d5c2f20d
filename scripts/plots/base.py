"""What every figure shares: where it is written (PNG and SVG, never through
a link), which cases a figure takes, a transport's line and colour, a size
axis, plain log ticks, lines against size and grouped p50 bars."""
import os

import matplotlib

matplotlib.use("Agg")
# The same inputs give the same files, byte for byte: no date in the SVG
# metadata, and the SVG's element ids drawn from a fixed salt.
matplotlib.rcParams["svg.hashsalt"] = "sockbench"
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from scripts import outputs, resultfiles, stats  # noqa: E402
from scripts.labels import colour, size_label, transport_rank  # noqa: E402


def save(fig, out_dir, name):
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


def cases(runs, workload):
    """Baseline cases of `workload` (no knob values, no A/A copy: the knob
    figures show those) with both ends in one namespace (the --netns cases
    have their own figure), each with `_run`, its run's 1-based number."""
    return [dict(c, _run=n) for n, r in enumerate(runs, 1) for c in r.baseline().cases
            if c["workload"] == workload and resultfiles.netns(c) == "off"]


# A --netns mode's line style, in every figure that shows several.
NETNS_STYLES = {"off": "-", "veth": "--", "bridge": ":"}

# A line's marker by the rank of its run among the runs of its transport.
MARKERS = "osD^v"


def by_transport(cases):
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


def size_axis(ax, sizes):
    """Log2 size axis with a tick at every measured size, labelled in the
    units people write (64, 4K, 1M) and no minor ticks."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(size_label))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def trial_ci(case, value):
    """Median and 95% CI over a case's trials of `value(trial point)`."""
    xs = [value(p) for p in case.get("trial_points", [])]
    return stats.median_ci(xs) if xs else (None, None, None)


def plain_log_y(ax):
    """A log y axis labelled in plain numbers (6, 20, 100), not "6×10¹",
    with ticks at 1, 2 and 5 of every decade: never a lone tick."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(plain)


def lines_vs_size(cases, y, ci, dashed, xlabel, ylabel, title, ylog, name, out_dir):
    """One line per transport of `y(case)` against size, with its 95% CI as
    error bars (`ci(case)` → (low, high), or None where the case has no CI), and a thin dashed line of
    `dashed(case)` when given."""
    sizes = {c["size_bytes"] for c in cases}
    if len(sizes) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, t, marker, cs in by_transport(cases):
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
    size_axis(ax, sizes)
    if ylog:
        plain_log_y(ax)
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
    return save(fig, out_dir, name)


HATCH = {"off": "", "veth": "//", "bridge": "xx"}


def p50_bars(labels, series, cell, ylabel, title, name, out_dir):
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
    return save(fig, out_dir, name)

"""Figures up the stack: the UDS ÷ TCP ladder from syscalls to nginx, across
network namespaces, nginx → gunicorn, and where the µs of a round trip go
(`sockbench explain`)."""
import math

import matplotlib.pyplot as plt

from scripts import resultfiles
from scripts.labels import ORDER, bytes_label, ci_pair, colour, rate_words, sizes_words
from scripts.plots import base
from scripts.plots.base import HATCH


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
    return base.p50_bars([f"{w} {sizes_words(s, rs)}" for w, s, rs in groups],
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
    return base.p50_bars([name(*g) for g in groups], [(t, h, legend) for t, h, _, legend in series],
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
    """A load run's ratio rows of one size and --netns mode: the row at the
    highest offered rate up to half the lowest rate at which either
    transport saturated at that size and mode (well below the knee, where a
    tail is not yet a queue), or at the highest rate when neither
    saturated; None without such a rate."""
    if not rows:
        return None
    x0 = rows[0]
    sat = [c["offered_per_s"] for c in run.cases if c["transport"] in (num, den) and c.get("saturated")
           and (c["size_bytes"], c.get("response_bytes")) == (x0["size_bytes"], x0.get("response_bytes"))
           and resultfiles.netns(c) == x0.get("numerator_netns", "off")]
    limit = min(sat) / 2 if sat else float("inf")
    ok = [x for x in rows if x.get("offered_per_s") and x["offered_per_s"] <= limit]
    return max(ok, key=lambda x: x["offered_per_s"]) if ok else None


def _settings_words(run, x):
    """What a run set away from the defaults for the numerator's case, in
    words (", wait spin, depth 16"): part of a ladder bar's name, so that two
    runs asking different questions never share one."""
    case = next((c for c in run.cases if c["transport"] == x["numerator"] and c["size_bytes"] == x["size_bytes"]),
                {})
    words = []
    if case.get("mode", "thread") != "thread":
        words.append(f"{case['mode']} mode")
    if case.get("wait", "block") != "block":
        words.append(f"wait {case['wait']}")
    if case.get("nodelay", True) is False:
        words.append("Nagle on")
    if case.get("placement", "s0c1") != "s0c1":
        words.append(f"placement {case['placement']}")
    if (case.get("depth") or 1) > 1:
        words.append(f"depth {case['depth']}")
    if (case.get("pairs") or 1) > 1:
        words.append(f"{case['pairs']} pairs at once")
    return "".join(f", {w}" for w in words)


def ladder(runs, out_dir, num="uds-stream", den="tcp4"):
    """One UDS ÷ TCP p50 ratio per question the inputs answer (same --netns
    on both sides), one bar each with its CI: from syscalls up to nginx.
    A load sweep gives one bar per size, at the highest rate up to half
    of the first saturated one, named with that rate; a run of concurrent
    pairs is named by its pairs; a question two runs answer is drawn once,
    from the run with more rounds."""
    rows, no_rate = [], 0
    for r in runs:
        r = r.baseline()
        mine = [x for x in r.ratios if (x["numerator"], x["denominator"], x["metric"]) == (num, den, "p50")
                and x.get("numerator_netns", "off") == x.get("denominator_netns", "off")]
        w = r.cases[0]["workload"] if r.cases else "?"
        if w == "load":
            def size(y):
                return y["size_bytes"], y.get("response_bytes"), y.get("numerator_netns", "off")
            sizes = sorted({size(x) for x in mine})
            picked = [_half_knee(r, [y for y in mine if size(y) == sz], num, den) for sz in sizes]
            no_rate += sum(1 for x in picked if x is None)
            mine = [x for x in picked if x]
        for x in mine:
            name = _layer_label(x.get("workload") or w, sizes_words(x["size_bytes"], x.get("response_bytes")),
                                x.get("numerator_netns", "off"))
            if x.get("offered_per_s"):
                name += f" @ {rate_words(x['offered_per_s'])}"
            name += _settings_words(r, x)
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
    if no_rate:
        load += f" ({no_rate} load size{'s' if no_rate > 1 else ''} without such a rate left out)"
    twice = f"\na question several runs answer: from the one with most rounds ({dropped} left out)" \
        if dropped else ""
    ax.set_xlabel(f"{num} ÷ {den}, p50 time (95% CI): below 1, the Unix socket is faster{load}{twice}")
    ax.set_title("How much of the Unix socket's lead survives, layer by layer")
    ax.grid(True, axis="x", alpha=0.3)
    return base.save(fig, out_dir, "ladder")


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
        out.append((title, base.save(fig, out_dir, f"layers{suffix}")))
    return out

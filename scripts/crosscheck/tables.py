"""The peers' tables: the paired ratio of each tool to the row every ratio
is taken against (median over rounds with a 95% bootstrap CI), the notes
each table's tools need, the section titles, and README.md and raw.json of
a run (measured, or re-read from an earlier raw.json). Reads no socket and
runs no tool."""
import json
import os

from scripts import outputs
from scripts.labels import cell, size_label


def paired(xs, ys):
    """Median and 95% bootstrap CI of the per-round ratios xs[i]/ys[i]."""
    import numpy as np
    from scipy import stats
    r = np.array([x / y for x, y in zip(xs, ys) if x and y])
    if len(r) == 0:
        return None
    if len(r) < 3 or np.all(r == r[0]):
        return float(np.median(r)), float(r.min()), float(r.max()), len(r)
    ci = stats.bootstrap((r,), np.median, n_resamples=10_000, method="percentile",
                         random_state=np.random.default_rng(1)).confidence_interval
    return float(np.median(r)), float(ci.low), float(ci.high), len(r)


def table(res, unit, base="sockbench", over_base=False, tolerance=0.10):
    """One row per (cell, tool): median, and the paired ratio base/tool (or
    tool/base with `over_base`); each cell's line says whether base is
    within `tolerance` of the peers' median."""
    import numpy as np
    head = ("tool / first row" if base is None else f"tool / {base}") if over_base else f"{base} / tool"
    lines = [f"| cell | tool | median {unit} | {head} (95% CI, rounds) |", "|---|---|---|---|"]
    verdicts = []
    cell_base = base
    for (transport, size), tools in res.items():
        base = cell_base if cell_base is not None else next(iter(tools))
        label = f"{transport} {size_label(size)}"
        meds = {n: float(np.median([v for v in vs if v])) for n, vs in tools.items() if any(vs)}
        for n, vs in tools.items():
            if n not in meds:
                lines.append(f"| {cell(label)} | {cell(n)} | failed | |")
                continue
            pair = (vs, tools[base]) if over_base else (tools[base], vs)
            pr = paired(*pair) if n != base and base in tools else None
            ratio = f"{pr[0]:.3f} ({pr[1]:.3f}–{pr[2]:.3f}, {pr[3]})" if pr else "–"
            lines.append(f"| {cell(label)} | {cell(n)} | {meds[n]:.2f} | {ratio} |")
        peers = [m for n, m in meds.items() if not n.startswith("sockbench") and not n.startswith("lean")]
        if base in meds and peers:
            mid = float(np.median(peers))
            off = meds[base] / mid - 1
            verdicts.append((label, off, abs(off) <= tolerance))
    return lines, verdicts


# (what a row's tool name must contain for the note to apply, the note)
NOTES = [
    (("netperf", "neper", "sockperf", "qperf", "lmbench"),
     "Conventions: netperf and neper report transactions per second (RTT = 1/rate) and netperf "
     "10^6 bit/s; sockperf's avg-latency and qperf's latency are half a round trip (doubled here); "
     "lmbench reports the round trip and MB = 10^6 B. qperf numbers CPUs from 1 (`-lca 1` is CPU 0)."),
    (("sockbench (thread)",),
     "Rows named `sockbench` run with `--mode process` (a forked server, as every peer but neper's threads); "
     "`sockbench (thread)` is its default mode, for reference."),
    (("lat_",),
     "lmbench lat_tcp and lat_unix make one read() per message, and lat_tcp's server answers every "
     "read with a whole message: once a message arrives in parts (64 KiB here) they stop being a "
     "ping-pong (lat_tcp times partial messages, lat_unix stalls), so their 64 KiB cells are left out. "
     "lat_udp needs 4 B or more; lat_pipe moves one word. sockperf carries at most 65,000 B and at "
     "least 14 B. udp4 carries at most 65,507 B."),
    (("STREAM_STREAM", "STREAM_RR"),
     "netperf's STREAM_STREAM and STREAM_RR ask netserver for a 2,304-byte receive buffer (the kernel's "
     "minimum) unless told otherwise; `-S 212992` gives it the default size (doubled by the kernel to 425,984)."),
    (("--nodelay off",),
     "sockbench sets TCP_NODELAY by default, so its 64 B tcp4 writes go out one segment each; the "
     "peers leave Nagle on. `sockbench --nodelay off` is the like-for-like row. Loopback's MSS is "
     "65,483 B, so a 64 KiB write is one full segment and a 53-byte tail, which Nagle holds until the "
     "previous segment is acknowledged."),
    (("stream_threads.c",),
     "Each row is a process of its own, started fresh every round: `stream_threads.c` is two threads "
     "of one C program (write on one CPU, read on the other, 64 KiB or 4 KiB calls), lmbench's bw_unix "
     "two processes over a socketpair."),
    (("sockperf under-load",),
     "sockperf under-load runs with --reply-every 1 (every message answered, as in sockbench load) and "
     "--full-rtt (round trips, not halves); it paces its sends by spinning and its server sleeps in "
     "epoll_wait. Its client is two threads, a sender spinning on the clock and a receiver blocked in "
     "recvfrom (strace), both on the client's CPU: each reply wakes the receiver beside a spinning thread. "
     "sockbench's generator is one thread that polls (`--wait spin`) or sleeps in epoll_pwait2 (default). "
     "The row with sockperf's sender on the server's CPU shows how much that placement moves sockperf's "
     "own figure. sockbench times from each request's intended send, sockperf from the actual one: far "
     "below saturation they coincide."),
]


def notes(sections):
    """The notes that concern a tool in the tables."""
    names = {k[0] for _, res in sections for k in res}
    names |= {tool for _, res in sections for cell in res.values() for tool in cell}
    return [text for keys, text in NOTES if any(k in n for k in keys for n in names)]


OVERHEAD = ("sockbench's mean round trip over the lean C loop's, and the price of each difference "
            "(lean loop with it / without)")
BENCH = "`cargo bench` (full profile) against `sockbench latency`: mean round trip, 64 B"
PROGRESS = "sockbench with its progress bar drawn on a terminal against none: mean round trip, 64 B"
REVISION = ("This revision of sockbench against another build of it (--other): p50, 64 B, thread mode "
            "(load: 10k requests/s)")
LOAD = "Open-loop load, 64 B each way over one TCP connection or one UDP socket pair: p50 round trip"
LOAD_TCP = "Open-loop load, 64 B each way over one TCP connection: p50 round trip"  # runs before UDP joined
SOCKETPAIR = ("socketpair against uds-stream, one-way: Gbit/s, each run its own process (ratio: tool over the "
              "first row of its cell)")
PING = "Ping-pong: mean round trip"
STREAM = "Streaming: delivered payload"
CRR = "New connection per transaction (1 B each way)"
# title → (unit, the row every ratio is taken against, ratio = tool / that row)
SECTIONS = {OVERHEAD: ("µs", "lean C loop", True), BENCH: ("µs", "sockbench (thread)", False),
            SOCKETPAIR: ("Gbit/s", None, True), PROGRESS: ("µs", "sockbench --progress never", True),
            REVISION: ("µs", "sockbench (this revision)", True),
            LOAD: ("µs", "sockperf under-load", True), LOAD_TCP: ("µs", "sockperf under-load", True),
            PING: ("µs", "sockbench", False),
            STREAM: ("Gbit/s", "sockbench", False), CRR: ("transactions/s", "sockbench", False)}


def render(a, command, env, wall, sections):
    """OUT_DIR/README.md and raw.json from measured (or re-read) sections."""
    out = outputs.output_dir(a.output)
    md = [f"# {os.path.basename(os.path.normpath(out))}", "",
          f"Command (from the repository root, at revision `{env.get('git_revision')}`):", "", "```sh",
          "scripts/crosscheck/peers " + " ".join(command), "```", "",
          f"Wall time {wall:.0f} s; {a.rounds} rounds of {a.seconds} s runs, A B … B A within each cell; "
          f"server CPU {a.server_cpu}, client CPU {a.client_cpu}. "
          + "".join(f"{n} from `{d}`. " for n, d in (("netperf", a.netperf), ("neper", a.neper), ("lmbench", a.lmbench))
                    if d)
          + "Medians over rounds; ratios are medians of per-round paired ratios with 95% bootstrap CIs.", ""]
    raw = {}
    for title, res in sections:
        unit, base, over_base = SECTIONS[title]
        lines, verdicts = table(res, unit, base=base, over_base=over_base)
        md += [f"## {title}", ""] + lines + [""]
        if verdicts and base == "sockbench":
            md += ["Within 10% of the peers' median: " + "; ".join(
                f"{cell(lb)} {'yes' if ok else f'**no ({100 * off:+.0f}%)**'}" for lb, off, ok in verdicts), ""]
        raw[title] = {f"{k[0]} {k[1]}": v for k, v in res.items()}
    if notes(sections):
        md += ["## Notes", ""] + [f"- {n}" for n in notes(sections)] + [""]
    md += ["## Machine", "", f"`{cell(env.get('cpu_model'))}`, kernel {cell(env.get('kernel_release'))}, "
           f"{cell(env.get('virtualization') or 'bare metal')}, clocksource {cell(env.get('clocksource'))}.", ""]
    outputs.write_text(os.path.join(out, "README.md"), "\n".join(md))
    doc = {"command": command, "wall_s": wall, "env": env, "results": raw}
    outputs.write_text(os.path.join(out, "raw.json"), json.dumps(doc, indent=1) + "\n")
    print(os.path.join(out, "README.md"))

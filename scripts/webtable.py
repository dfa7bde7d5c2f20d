"""The Markdown table of an nginx → gunicorn run, shared by
scripts/webbench (the run's README) and scripts/report. Standard library
only."""

from scripts.labels import ratio_ci, size_label


def web_table(cases, ratios):
    """The Markdown table of an nginx → gunicorn run: per (body, app work)
    and upstream keepalive, TCP and UDS p50/p99 and req/s with the paired
    ratios. Used by scripts/webbench (the run's README) and scripts/report."""
    def us(ns):
        return f"{ns / 1e3:.2f}"

    def ci(x):
        return ratio_ci(x)
    lines = ["| body | app work | upstream | TCP p50 µs | UDS p50 µs | UDS/TCP p50 (95% CI) | TCP p99 µs | UDS p99 µs | "
             "TCP req/s | UDS req/s | UDS/TCP req/s (95% CI) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    by = {(c["variant"], c["size_bytes"], c["app_work_us"]): c for c in cases}
    rat = {(x.get("workload"), x["size_bytes"], x["metric"]): x for x in ratios}
    for body, work in sorted({(c["size_bytes"], c["app_work_us"]) for c in cases}):
        for ka in (False, True):
            t, u = by.get(("tcp-ka" if ka else "tcp", body, work)), by.get(("uds-ka" if ka else "uds", body, work))
            if not t or not u:
                continue
            p, q = rat.get((t["workload"], body, "p50")), rat.get((t["workload"], body, "ops_per_s"))
            lines.append(f"| {size_label(body)} | {work} µs | {'keepalive' if ka else 'close'} | "
                         f"{us(t['p50_ns'])} | {us(u['p50_ns'])} | {ci(p)} | {us(t['p99_ns'])} | {us(u['p99_ns'])} | "
                         f"{t['ops_per_s']:.0f} | {u['ops_per_s']:.0f} | {ci(q)} |")
    return lines

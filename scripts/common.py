"""What every script shares, with the standard library only (so `--help` and
input checks need nothing installed): the one-line `fatal:` exit, size
labels, Markdown cells that cannot break a table, and writes that never go
through a link the script did not make.
"""
import os
import sys
import tempfile


class Fatal(Exception):
    """A bad input or an impossible output: the message names the file and what is wrong."""


def fatal(msg):
    print(f"fatal: {msg}", file=sys.stderr)
    sys.exit(1)


def run(main):
    """Run a script's `main`; a Fatal it raises is one `fatal:` line, exit 1."""
    try:
        main()
    except Fatal as e:
        fatal(str(e))


def interrupt_on_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so that every
    `finally` runs (stopping what the script started, removing its
    directories). Set explicitly: a job started in the background of a
    script has SIGINT ignored, and Python would keep ignoring it; SIGTERM
    and SIGHUP would otherwise end the interpreter without a `finally`."""
    import signal

    def stop(signum, _):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def size_label(b, _=None):
    """Bytes in the units people write: 64, 4K, 1M (1024-based)."""
    b = int(b)
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b >> 20}M"
    if b >= 1024 and b % 1024 == 0:
        return f"{b >> 10}K"
    return str(b)


def sizes_label(size, response=None):
    """`64`, or `512/16K` when the response size differs (0: none, as in throughput)."""
    if response in (None, 0, size):
        return size_label(size)
    return f"{size_label(size)}/{size_label(response)}"


def cell(value):
    """`value` as one Markdown table cell: a `|` or a line break in a run
    name, a command or a fingerprint must not end the cell or the row."""
    return " ".join(str(value).split("\n")).replace("\r", " ").replace("|", "\\|")


def subdir(parent, name):
    """`parent/name` as a directory of our own: made if missing; refused if
    it is a symbolic link (something planted there would have us write
    elsewhere) or not a directory."""
    path = os.path.join(parent, name)
    if os.path.islink(path):
        raise Fatal(f"{path}: is a symbolic link; refusing to write through a link this script did not make "
                    "(remove it, or name another output directory)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise Fatal(f"{path}: cannot make the directory ({e.strerror})")
    if not os.path.isdir(path):
        raise Fatal(f"{path}: exists and is not a directory")
    return path


def output_dir(path):
    """The directory a report goes to: made if missing, refused (one line)
    if it is a file or cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise Fatal(f"{path}: exists and is not a directory; name a directory for the output")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise Fatal(f"{path}: cannot make the output directory ({e.strerror})")
    if not os.access(path, os.W_OK | os.X_OK):
        raise Fatal(f"{path}: the output directory is not writable")
    return path


def replace_file(path, write):
    """Make `path` by `write(temp_path)` on a new file beside it, then
    rename it into place: complete or absent, and a link already at `path`
    is replaced, never written through."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
        os.close(fd)
    except OSError as e:
        raise Fatal(f"{path}: cannot write there ({e.strerror})")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise Fatal(f"{path}: cannot write it ({e.strerror})")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text):
    """Write `text` to `path` (see `replace_file`)."""
    def put(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    replace_file(path, put)


def parser(prog, doc):
    """An argparse parser for a script called `prog`: help from `doc`; a
    bad flag or value is one `fatal:` line and exit 2, like sockbench's."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"fatal: {message} (see {self.prog} --help)", file=sys.stderr)
            sys.exit(2)

    return Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


# A transport has the same colour in every figure, and this order in every table.
COLOURS = {
    "tcp4": "#d62728", "tcp6": "#ff7f0e", "udp4": "#8c564b",
    "uds-stream": "#1f77b4", "uds-dgram": "#17becf", "uds-seqpacket": "#9467bd",
    "uds-abstract": "#2ca02c", "socketpair": "#7f7f7f", "pipe": "#bcbd22",
}
ORDER = list(COLOURS)


def colour(transport):
    return COLOURS.get(transport, "#000000")


def transport_rank(transport):
    return ORDER.index(transport) if transport in ORDER else len(ORDER)


RESAMPLES = 10_000


def median_ci(xs, seed=1):
    """Median of `xs` and its 95% percentile-bootstrap CI (scipy; the one
    rule every script uses). One value: that value, three times."""
    import numpy as np
    from scipy import stats
    xs = np.asarray(xs, dtype=float)
    m = float(np.median(xs))
    if len(xs) < 2 or np.all(xs == xs[0]):
        return m, m, m
    ci = stats.bootstrap((xs,), np.median, n_resamples=RESAMPLES, method="percentile",
                         random_state=np.random.default_rng(seed)).confidence_interval
    return m, float(ci.low), float(ci.high)


def change_ci(before, after, seed=1):
    """Relative change of the median, after vs before, and its 95%
    percentile-bootstrap CI, each side resampled on its own (scipy)."""
    import numpy as np
    from scipy import stats
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    point = float(np.median(a) / np.median(b) - 1)
    if len(b) < 2 or len(a) < 2:
        return point, point, point
    ci = stats.bootstrap((a, b), lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis) - 1,
                         n_resamples=RESAMPLES, method="percentile", vectorized=True,
                         random_state=np.random.default_rng(seed)).confidence_interval
    return point, float(ci.low), float(ci.high)


def web_table(cases, ratios):
    """The Markdown table of an nginx → gunicorn run: per (body, app work)
    and upstream keepalive, TCP and UDS p50/p99 and req/s with the paired
    ratios. Used by scripts/webbench (the run's README) and scripts/report."""
    def us(ns):
        return f"{ns / 1e3:.2f}"

    def ci(x):
        return f"{x['ratio']:.3f} ({x['ci_low']:.3f}–{x['ci_high']:.3f})" if x else "–"
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

"""How things are named on a page: sizes in the units people write,
Markdown cells that cannot break a table, and each transport's colour and
place in every table and figure. Standard library only."""


def size_label(b, _=None):
    """Bytes in the units people write: 64, 4K, 1M (1024-based)."""
    b = int(b)
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b >> 20}M"
    if b >= 1024 and b % 1024 == 0:
        return f"{b >> 10}K"
    return str(b)


def bytes_label(b):
    """Bytes as a reader writes them in prose and titles: 64 B, 64 KiB, 1 MiB."""
    b = int(b)
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b >> 20} MiB"
    if b >= 1024 and b % 1024 == 0:
        return f"{b >> 10} KiB"
    return f"{b} B"


def sizes_words(size, response=None):
    """A request size and a different response size in one unit style:
    `64 B`, `512 B/16 KiB` (never "4K B")."""
    if response is not None and int(response) not in (0, int(size)):
        return f"{bytes_label(size)}/{bytes_label(response)}"
    return bytes_label(size)


def sizes_label(size, response=None):
    """`64`, or `512/16K` when the response size differs (0: none, as in throughput)."""
    if response in (None, 0, size):
        return size_label(size)
    return f"{size_label(size)}/{size_label(response)}"


def rate_words(per_s):
    """An offered rate as people say it: 154k/s, 1.2M/s, 800/s (999,600/s is
    1M/s, never "1000k/s")."""
    per_s = float(per_s)
    for unit, scale in (("M", 1e6), ("k", 1e3), ("", 1.0)):
        v = per_s / scale
        if round(v, 1) >= 1 or not unit:
            text = f"{v:.0f}" if v >= 9.95 else f"{v:.1f}".removesuffix(".0")
            return f"{text}{unit}/s"


def cell(value):
    """`value` as one Markdown table cell: a `|` or a line break in a run
    name, a command or a fingerprint must not end the cell or the row."""
    return " ".join(str(value).split("\n")).replace("\r", " ").replace("|", "\\|")


# A transport has the same colour in every figure, and this order in every table.
COLOURS = {
    "tcp4": "#d62728", "tcp6": "#ff7f0e", "udp4": "#8c564b",
    "uds-stream": "#1f77b4", "uds-dgram": "#17becf", "uds-seqpacket": "#9467bd",
    "uds-abstract": "#2ca02c", "socketpair": "#7f7f7f", "pipe": "#bcbd22",
    # The ladder's own rungs (sockbench explain).
    "tcp4-sockmap": "#e377c2", "futex": "#aec7e8", "shm-spin": "#c7c7c7",
}
ORDER = list(COLOURS)


def colour(transport):
    return COLOURS.get(transport, "#000000")


def transport_rank(transport):
    return ORDER.index(transport) if transport in ORDER else len(ORDER)


def ci_pair(x):
    """A ratio's 95% CI as (low, high), or (ratio, ratio) where the run had
    too few rounds for one (schema 3: null below 5 rounds)."""
    if x.get("ci_low") is None or x.get("ci_high") is None:
        return x["ratio"], x["ratio"]
    return x["ci_low"], x["ci_high"]


def ci_range(x):
    """`0.780–0.796`, or `n/a (3 rounds)`."""
    if x.get("ci_low") is None or x.get("ci_high") is None:
        return f"n/a ({x.get('rounds', '?')} rounds)"
    return f"{x['ci_low']:.3f}–{x['ci_high']:.3f}"


def ratio_ci(x):
    """A ratio with its CI as the reports print it: `0.789 (0.780–0.796)`."""
    return f"{x['ratio']:.3f} ({ci_range(x)})" if x else "–"

"""Loading and checking result files, shared by report.py and compare.py.

Two kinds of input, both read-only:
- a sockbench run directory (summary.json, env.json, *.hgrm), written by
  `sockbench <workload> --out DIR`;
- a criterion directory (target/criterion, or CRITERION_HOME) and a baseline
  name: criterion's stable raw.csv per benchmark, plus sockbench's tail side
  files (tails.json, tails.hgrm, env.json) beside it.
Every problem ends the program with `fatal: <file>: <what is wrong>`, exit 2.
"""
import csv
import json
import math
import os
import statistics
import sys

from scripts.cli import BadInput

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The one schema, generated from sockbench's Rust types (tests/schema.rs).
SCHEMA = os.path.join(ROOT, "docs", "results-schema.json")
SCHEMA_VERSION = 3  # the newest this loader reads; files without one are version 1
LATENCY_WORKLOADS = ("latency", "rr", "connect")
CASE_KEY = ("workload", "transport", "size_bytes", "response_bytes", "depth", "pairs", "netns")
# Key columns only some workloads or runs have: `load`'s offered rate, and
# the knobs where a case differs from its run's baseline (empty otherwise).
OPTIONAL_KEY = ("offered_per_s", "knobs")
NEEDED_LATENCY = ("p50_ns", "p99_ns", "p999_ns", "mean_ns", "p50_ci_low_ns", "p50_ci_high_ns", "ops_per_s")
NEEDED_THROUGHPUT = ("bytes_per_s", "bytes_per_s_ci_low", "bytes_per_s_ci_high", "client_cpu_ns_per_msg",
                     "server_cpu_ns_per_msg", "loss_pct")
CRITERION_GROUPS = {"pingpong": "latency", "rr": "rr", "connect": "connect", "stream": "throughput"}


def schema_properties(definition):
    """The fields a definition of the results schema has (`CaseRow`,
    `ThroughputRow`, `WebRow`, ...)."""
    doc = _json(SCHEMA)
    try:
        return set(doc["$defs"][definition]["properties"])
    except KeyError:
        raise BadInput(f"{SCHEMA}: no definition {definition}")


def _json(path):
    """A JSON file; NaN and Infinity (which Python would accept) are refused."""
    def no_constant(c):
        raise BadInput(f"{path}: holds {c}, which is not a number JSON allows")
    try:
        with open(path) as f:
            return json.load(f, parse_constant=no_constant)
    except FileNotFoundError:
        raise BadInput(f"{path}: missing")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON ({e})")
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, not a file")


TEXT_FIELDS = ("workload", "transport", "netns")
WHOLE_FIELDS = ("size_bytes", "response_bytes", "depth", "pairs")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_case(where, c, need):
    """A case must be an object with the key columns and the numbers a
    report reads, each of the right type."""
    if not isinstance(c, dict):
        raise BadInput(f"{where}: not an object")
    missing = [k for k in CASE_KEY + need if k not in c and k != "netns"]
    if missing:
        raise BadInput(f"{where} lacks {', '.join(missing)}")
    for k in TEXT_FIELDS:
        if k in c and not isinstance(c[k], str):
            raise BadInput(f"{where}: {k} is {c[k]!r}, not text")
    for k in WHOLE_FIELDS:
        if not (isinstance(c[k], int) and not isinstance(c[k], bool) and c[k] >= 0):
            raise BadInput(f"{where}: {k} is {c[k]!r}, not a whole number")
    for k in need:
        if not _number(c[k]):
            raise BadInput(f"{where}: {k} is {c[k]!r}, not a number")
    def plain(v):
        return _number(v) or isinstance(v, bool)

    def stamps(v):
        # `stamps` (--trace stamp): the order, five span medians (and means), counts.
        return isinstance(v, dict) and isinstance(v.get("order"), str) and \
            isinstance(v.get("p50_ns"), list) and all(map(_number, v["p50_ns"])) and \
            all(map(_number, v.get("mean_ns", []))) and \
            all(plain(x) for k, x in v.items() if k not in ("order", "p50_ns", "mean_ns"))

    for i, t in enumerate(c.get("trial_points", [])):
        # `events` (--trace count): an object of counts.
        if not isinstance(t, dict) or not all(
                plain(v) or (k in ("events", "interference") and isinstance(v, dict) and all(map(plain, v.values())))
                or (k == "stamps" and stamps(v))
                for k, v in t.items()):
            raise BadInput(f"{where}: trial point {i} is not an object of numbers")


class Run:
    """One set of results: cases (dicts with the summary.csv columns, plus
    `trial_points` where known), ratios, warnings, env, command, and where
    each case's .hgrm file is."""

    def __init__(self, source, label, cases, ratios, warnings, env, command, hgrm):
        self.source, self.label = source, label
        self.cases, self.ratios, self.warnings = cases, ratios, warnings
        self.env, self.command, self.hgrm = env, command, hgrm
        self.settings = {}
        # `sockbench explain` (latency over the ladder): where the µs go.
        self.explained = None
        # A baseline() of a run with knob lists.
        self.knobbed = False

    def workloads(self):
        return sorted({c["workload"] for c in self.cases})

    def baseline(self):
        """The run as a run without knob lists: its baseline cases (every
        knob at its first value, no A/A copy) and the ratios between them."""
        baseline = [x for x in self.ratios if x.get("knob") is None
                    and not x.get("numerator_knobs") and not x.get("denominator_knobs")]
        cases = [c for c in self.cases if not c.get("knobs")]
        hgrm = {key(c): self.hgrm[key(c)] for c in cases if key(c) in self.hgrm}
        b = Run(self.source, self.label, cases, baseline, self.warnings, self.env, self.command, hgrm)
        b.settings, b.explained = self.settings, self.explained
        # Whether cases were left out: the figures drawn from it say so.
        b.knobbed = len(cases) < len(self.cases)
        return b

    def knob_ratios(self):
        """Ratios of a knob value over the knob's first, and the A/A ratios
        (`knob` == "control"), of the run's main metric."""
        main = {"throughput": "ns_per_byte", "load": "p99"}.get(self.workloads()[0] if self.cases else "", "p50")
        return [x for x in self.ratios if x.get("knob") is not None and x.get("metric") == main]


def netns(case):
    """`--netns` mode of a case or ratio side; runs from before --netns were all `off`."""
    return case.get("netns", "off")


def key(case):
    def get(k):
        if k == "netns":
            return netns(case)
        if k == "knobs":  # runs from before knob lists had none
            return case.get(k) or ""
        return case.get(k)
    return tuple(get(k) for k in CASE_KEY + OPTIONAL_KEY)


def load_sockbench(path):
    """A `sockbench --out` directory."""
    where = os.path.join(path, "summary.json")
    doc = _json(where)
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: not a JSON object (is this sockbench's summary.json?)")
    for field, kind in (("cases", list), ("env", dict), ("workload", str), ("command", list)):
        if field not in doc:
            raise BadInput(f"{where}: no '{field}' (is this sockbench's summary.json?)")
        if not isinstance(doc[field], kind):
            raise BadInput(f"{where}: '{field}' is not a {kind.__name__}")
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BadInput(f"{where}: schema version {version!r} is newer than these scripts read ({SCHEMA_VERSION}); "
                    "update the scripts")
    need = NEEDED_THROUGHPUT if doc["workload"] == "throughput" else NEEDED_LATENCY
    for i, c in enumerate(doc["cases"]):
        _check_case(f"{where}: case {i}", c, need)
    for i, x in enumerate(doc.get("ratios", [])):
        if not isinstance(x, dict) or not _number(x.get("ratio")) or \
                not all(_number(x.get(k)) or x.get(k) is None for k in ("ci_low", "ci_high")):
            raise BadInput(f"{where}: ratio {i} is not an object with numbers ratio, ci_low, ci_high")
        if x.get("metric") == "bytes_per_s" and x["ratio"] > 0:
            # Schema 2 divided rates (above 1 faster); every ratio now
            # divides time (per byte here): below 1 faster.
            lo, hi = x.get("ci_low"), x.get("ci_high")
            x.update(metric="ns_per_byte", ratio=1 / x["ratio"],
                     ci_low=1 / hi if hi else None, ci_high=1 / lo if lo else None)
    if not all(isinstance(w, dict) and isinstance(w.get("message"), str) for w in doc.get("warnings", [])):
        raise BadInput(f"{where}: a warning is not an object with a message")
    hgrm = {}
    for c in doc["cases"]:
        name = c.get("hgrm_file")
        if name is None and version < 2:  # older files: the name the Rust side used
            name = c["transport"] + ("" if netns(c) == "off" else f"-{netns(c)}") + f"-{c['size_bytes']}B"
            if c["workload"] != "latency" and c["response_bytes"] != c["size_bytes"]:
                name += f"-{c['response_bytes']}B"
            name += ".hgrm"
        if name and os.path.basename(name) == name and os.path.exists(os.path.join(path, name)):
            hgrm[key(c)] = os.path.join(path, name)
    label = os.path.basename(os.path.normpath(path))
    run = Run(path, label, doc["cases"], doc.get("ratios", []), doc.get("warnings", []), doc["env"],
              " ".join(str(a) for a in doc["command"]), hgrm)
    run.settings = doc.get("settings", {})
    explained = doc.get("explained")
    if explained is not None:
        layers = explained.get("layers") if isinstance(explained, dict) else None
        if not isinstance(layers, list) or not all(
                isinstance(x, dict) and all(_number(x.get(k)) for k in ("us", "ci_low_us", "ci_high_us"))
                for x in layers):
            raise BadInput(f"{where}: 'explained' has no list of layers with numbers us, ci_low_us, ci_high_us")
        run.explained = explained
    return run


def read_raw_csv(path):
    """criterion's raw.csv → (its first row, per-sample ns per iteration,
    total ns, total iterations). Raises Fatal naming the file when it is
    missing, empty or not criterion's format."""
    need = {"group", "function", "value", "sample_measured_value", "unit", "iteration_count",
            "throughput_num", "throughput_type"}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise BadInput(f"{path}: missing")
    if not rows:
        raise BadInput(f"{path}: no samples")
    missing = need - set(rows[0])
    if missing:
        raise BadInput(f"{path}: missing columns {', '.join(sorted(missing))} (criterion's csv_output raw.csv expected)")
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    per_iter, total_ns, total_iter = [], 0.0, 0.0
    for r in rows:
        if r["unit"] not in scale:
            raise BadInput(f"{path}: unknown unit {r['unit']!r}")
        ns, iters = float(r["sample_measured_value"]) * scale[r["unit"]], float(r["iteration_count"])
        per_iter.append(ns / iters)
        total_ns, total_iter = total_ns + ns, total_iter + iters
    return rows[0], per_iter, total_ns, total_iter


def load_criterion(root, baseline="new"):
    """Every benchmark under a criterion directory, for one baseline."""
    if not os.path.isdir(root):
        raise BadInput(f"{root}: not a directory (run `cargo bench` first)")
    cases, hgrm, env = [], {}, None
    for d, _, files in sorted(os.walk(root)):
        if os.path.basename(d) != baseline or "raw.csv" not in files:
            continue
        first, per_iter, _, _ = read_raw_csv(os.path.join(d, "raw.csv"))
        workload = CRITERION_GROUPS.get(first["group"])
        if workload is None:
            continue
        size, resp = first["value"], None
        if "x" in size:
            size, resp = size.split("x", 1)
        case = {"workload": workload, "transport": first["function"], "size_bytes": int(size),
                "response_bytes": int(resp) if resp else int(size), "depth": 1, "pairs": 1,
                "samples_ns_per_iter": per_iter, "mean_ns": statistics.mean(per_iter)}
        tails = os.path.join(d, "tails.json")
        if os.path.exists(tails):
            s = _json(tails)["summary"]
            case.update({k: s[k] for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns", "min_ns")})
            if os.path.exists(os.path.join(d, "tails.hgrm")):
                hgrm[key(case)] = os.path.join(d, "tails.hgrm")
            if env is None and os.path.exists(os.path.join(d, "env.json")):
                env = _json(os.path.join(d, "env.json"))
        if workload == "throughput":
            case["bytes_per_s"] = case["size_bytes"] * 1e9 / statistics.median(per_iter)
        cases.append(case)
    if not cases:
        raise BadInput(f"{root}: no {baseline}/raw.csv of a sockbench bench (criterion's csv_output feature must be on)")
    return Run(root, f"criterion:{baseline}", cases, [], [], env or {}, f"cargo bench (baseline {baseline})", hgrm)


def load(spec):
    """A sockbench run directory, or CRITERION_DIR:BASELINE (or a criterion
    directory alone, meaning its `new` baseline)."""
    path, _, baseline = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    looks_like_run = any(os.path.exists(os.path.join(path, f)) for f in ("summary.json", "summary.csv", "env.json"))
    if looks_like_run:
        return load_sockbench(path)  # names summary.json if it is the part missing
    if os.path.isdir(path):
        return load_criterion(path, baseline or "new")
    raise BadInput(f"{spec}: neither a sockbench run directory (no summary.json) nor a criterion directory")


def read_hgrm(path):
    """HdrHistogram percentile text → (value_us list, percentile list)."""
    values, pcts = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or line.startswith("#") or parts[0] == "Value":
                continue
            try:
                values.append(float(parts[0]))
                pcts.append(float(parts[1]))
            except ValueError:
                raise BadInput(f"{path}: line not in .hgrm form: {line.strip()}")
    if not values:
        raise BadInput(f"{path}: no percentile lines")
    return values, pcts

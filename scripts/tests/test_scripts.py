"""The report and compare scripts on committed fixtures: real sockbench runs
and a slice of real criterion output. Checks that files are produced, that
the numbers in the reports are the inputs' numbers, and that bad input gets
one `fatal:` line."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
FIX = os.path.join(HERE, "fixtures")


ROOT = os.path.dirname(SCRIPTS)


def run(script, *args, cwd=None):
    """`python -m scripts.<script>` (a file name of scripts/) with the repository on the path."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    module = "scripts." + script.removesuffix(".py")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


@pytest.fixture
def fixtures(tmp_path):
    dst = tmp_path / "fixtures"
    shutil.copytree(FIX, dst)
    return dst


def summary(path):
    with open(os.path.join(path, "summary.json")) as f:
        return json.load(f)


def test_report_quotes_the_inputs_and_draws_the_figures(fixtures, tmp_path):
    lat, thr, con = fixtures / "latency-before", fixtures / "throughput", fixtures / "connect"
    out = tmp_path / "rep"
    r = run("report.py", str(lat), str(thr), str(con), "-o", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    for name in ["latency_vs_size", "ratio_vs_size", "throughput_vs_size", "cpu_per_message", "connection_rate"]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
        assert (out / "figures" / f"{name}.svg").exists(), name
        assert f"figures/{name}.png" in md
    assert list((out / "figures").glob("percentiles_*B.png")), "one percentile figure per size"
    doc = summary(lat)
    for c in doc["cases"]:
        if c["transport"] in ("tcp4", "uds-stream"):
            assert f"{c['p50_ns'] / 1e3:.2f}" in md, c["transport"]
    for x in doc["ratios"]:
        if (x["numerator"], x["denominator"], x["metric"]) == ("uds-stream", "tcp4", "p50"):
            assert f"{x['ratio']:.3f} ({x['ci_low']:.3f}–{x['ci_high']:.3f})" in md
    t = summary(thr)
    for c in t["cases"]:
        if c["transport"] in ("tcp4", "uds-stream"):
            assert f"{c['bytes_per_s'] * 8 / 1e9:.2f}" in md  # Gbit/s, as the CLI says
    assert doc["env"]["kernel_release"] in md
    assert " ".join(doc["command"]) in md
    assert doc["warnings"][0]["message"] in md


def test_report_defaults_to_the_first_run_directory(fixtures):
    r = run("report.py", str(fixtures / "latency-before"))
    assert r.returncode == 0, r.stderr
    assert (fixtures / "latency-before" / "report.md").exists()


def test_report_reads_a_criterion_run(fixtures, tmp_path):
    r = run("report.py", f"{fixtures / 'criterion'}:new", "-o", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "c" / "report.md").read_text()
    assert "criterion:new" in md
    assert (tmp_path / "c" / "figures" / "percentiles_64B.png").exists()
    # Benchmarks with and without tails (pingpong/*, stream/*) side by side:
    # a headline per workload, each from its own cases.
    assert "### criterion:new (latency)" in md and "### criterion:new (throughput)" in md
    lat = md[md.index("### criterion:new (latency)"):md.index("### criterion:new (throughput)")]
    assert "| 64 | " in lat and "65536" not in lat and "64K" not in lat, lat
    thr = md[md.index("### criterion:new (throughput)"):md.index("## Figures")]
    assert "Gbit/s" in thr and "| 64K | " in thr, thr


def test_criterion_baselines_compare(fixtures, tmp_path):
    c = fixtures / "criterion"
    r = run("compare.py", f"{c}:base", f"{c}:new", "-o", str(tmp_path / "cc"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "cc" / "compare.md").read_text()
    for case in ["| latency tcp4 64 |", "| latency uds-stream 64 |", "| latency tcp4 4K |", "| throughput tcp4 64K |"]:
        assert case in md, case
    # A baseline is one run: no verdict, whatever its samples say.
    rows = [l for l in md.splitlines() if l.startswith("| latency ") or l.startswith("| throughput ")]
    assert rows and all(l.endswith("| no verdict |") for l in rows), rows


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: os.remove(d / "summary.json"), "summary.json"),
    (lambda d: (d / "summary.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "summary.json").write_text(json.dumps({"cases": [{}], "env": {}, "workload": "latency",
                                                           "command": []})), "case 0 lacks"),
])
def test_bad_input_is_one_fatal_line(fixtures, tmp_path, mutate, needle):
    d = fixtures / "latency-before"
    mutate(d)
    r = run("report.py", str(d), "-o", str(tmp_path / "r"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fatal: ") and needle in lines[0], r.stderr


def test_missing_criterion_csv_is_named(tmp_path):
    (tmp_path / "crit" / "pingpong" / "tcp4" / "64" / "new").mkdir(parents=True)
    (tmp_path / "crit" / "pingpong" / "tcp4" / "64" / "new" / "raw.csv").write_text("group,function\npingpong,tcp4\n")
    r = run("report.py", f"{tmp_path / 'crit'}:new", "-o", str(tmp_path / "r"))
    assert r.returncode == 2 and "raw.csv: missing columns" in r.stderr


def test_report_sections_for_namespaces_web_and_drift(fixtures, tmp_path):
    import statistics
    ns, web, soak = fixtures / "netns", fixtures / "web", fixtures / "soak"
    out = tmp_path / "rep"
    r = run("report.py", str(ns), str(web), str(soak), "-o", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    for name in ["netns_latency", "web_latency", "ladder", "drift"]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
        assert f"figures/{name}.png" in md
    d = summary(ns)
    for c in d["cases"]:
        assert f"{c['p50_ns'] / 1e3:.2f} ({c['p50_ci_low_ns'] / 1e3:.2f}–{c['p50_ci_high_ns'] / 1e3:.2f})" in md
    crossed = [x for x in d["ratios"] if x["metric"] == "p50" and x["numerator_netns"] != "off"]
    assert crossed
    for x in crossed:
        assert f"| {x['ratio']:.3f} | {x['ci_low']:.3f}–{x['ci_high']:.3f} |" in md
    w = summary(web)
    for c in w["cases"]:
        assert f"{c['ops_per_s']:.0f}" in md
    for x in w["ratios"]:
        assert f"{x['ratio']:.3f} ({x['ci_low']:.3f}–{x['ci_high']:.3f})" in md
    s = summary(soak)
    pts = sorted(s["cases"][0]["trial_points"], key=lambda t: t["round"])
    first = statistics.median(p["p50_ns"] for p in pts[:len(pts) // 10])
    assert f"| {s['cases'][0]['transport']} |" in md and f"{first / 1e3:.2f} →" in md


def test_webbench_ratios_are_medians_of_per_round_ratios():
    from types import SimpleNamespace
    from scripts import webbench

    def rounds(p50s):
        return [{"round": i, "p50_us": p, "p90_us": p, "p99_us": p, "p999_us": p, "mean_us": p, "max_us": p,
                 "requests": 1000, "duration_us": 1_000_000} for i, p in enumerate(p50s)]
    raw = {("tcp", 1024, 0): rounds([100, 200, 300]), ("uds", 1024, 0): rounds([50, 180, 240]),
           ("tcp-ka", 1024, 0): rounds([100, 100, 100]), ("uds-ka", 1024, 0): rounds([70, 70, 70])}
    cases, ratios = webbench.summarize(raw, SimpleNamespace(body=[1024], work_us=[0], connections=16))
    x = next(x for x in ratios if x["workload"] == "http-close-app0us" and x["metric"] == "p50")
    # per round 0.5, 0.9, 0.8: the median is 0.8 (the ratio of medians would be 0.9)
    assert x["ratio"] == pytest.approx(0.8)
    assert x["ci_low"] <= 0.8 <= x["ci_high"]
    ka = next(x for x in ratios if x["workload"] == "http-keepalive-app0us" and x["metric"] == "p50")
    assert ka["ratio"] == pytest.approx(0.7)
    assert {c["variant"] for c in cases} == {"tcp", "uds", "tcp-ka", "uds-ka"}


@pytest.mark.parametrize("args, needle", [
    (["--rounds", "0"], "--rounds 0: 1 to 100 allowed"),
    (["--body", "2M"], "--body '2M': 1 B to 1M allowed"),
    (["--body", "1K,1K"], "appears twice"),
    (["--work-us", "x"], "--work-us 'x'"),
    (["--server-cpu", "999"], "--server-cpu 999: not available"),
])
def test_webbench_bad_input_is_one_fatal_line_and_starts_nothing(tmp_path, args, needle):
    out = tmp_path / "web"
    r = run("webbench.py", "--out", str(out), *args)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("fatal: ") and needle in r.stderr, r.stderr
    assert not out.exists()


def one_fatal_line(r, code=1):
    """Exit `code` (1: an output that cannot be made; 2: bad input), one
    `fatal:` line on stderr, no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fatal: "), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("body,needle", [
    ("42", "not a JSON object"),
    ('{"cases": 3, "env": {}, "workload": "latency", "command": []}', "'cases' is not a list"),
    ("[1, 2]", "not a JSON object"),
    ("{", "not valid JSON"),
])
def test_malformed_summaries_get_one_fatal_line(tmp_path, body, needle):
    d = tmp_path / "run"
    d.mkdir()
    (d / "summary.json").write_text(body)
    for script in ("report.py", "compare.py"):
        args = [str(d)] if script == "report.py" else [str(d), str(d)]
        r = run(script, *args, "-o", str(tmp_path / "out"))
        one_fatal_line(r, 2)
        assert needle in r.stderr, r.stderr


@pytest.mark.parametrize("change,needle", [
    (lambda c: c.update(p50_ns="fast"), "p50_ns is 'fast', not a number"),
    (lambda c: c.update(size_bytes=-1), "size_bytes is -1, not a whole number"),
    (lambda c: c.update(transport=7), "transport is 7, not text"),
    (lambda c: c.update(p99_ns=float("nan")), "NaN"),
])
def test_wrong_types_and_nan_get_one_fatal_line(fixtures, tmp_path, change, needle):
    d = fixtures / "latency-before"
    doc = summary(d)
    change(doc["cases"][0])
    (d / "summary.json").write_text(json.dumps(doc))  # json.dumps writes NaN as NaN
    r = run("report.py", str(d), "-o", str(tmp_path / "out"))
    one_fatal_line(r, 2)
    assert needle in r.stderr, r.stderr


def test_bad_output_places_get_one_fatal_line(fixtures, tmp_path):
    lat = fixtures / "latency-before"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, needle in [(a_file, "not a directory"), ("/proc/sockbench-report", "cannot make")]:
        one_fatal_line(run("report.py", str(lat), "-o", str(out)))
        r = run("compare.py", str(lat), str(fixtures / "latency-after"), "-o", str(out))
        one_fatal_line(r)
        assert needle in r.stderr, r.stderr
    assert a_file.read_text() == "x"


def test_a_planted_link_is_never_written_through(fixtures, tmp_path):
    """A `figures` symlink in a run directory (pointing at someone's
    directory) is refused; a link in place of report.md is replaced, and
    what it pointed at is left as it was."""
    lat = fixtures / "latency-before"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "latency_vs_size.png").write_text("precious")
    os.symlink(victim, lat / "figures")
    r = run("report.py", str(lat))
    one_fatal_line(r)
    assert "symbolic link" in r.stderr
    assert (victim / "latency_vs_size.png").read_text() == "precious"
    os.unlink(lat / "figures")
    target = tmp_path / "target.md"
    target.write_text("precious")
    os.symlink(target, lat / "report.md")
    r = run("report.py", str(lat))
    assert r.returncode == 0, r.stderr
    assert target.read_text() == "precious"
    assert not os.path.islink(lat / "report.md")


def test_a_newline_or_bar_in_a_run_name_keeps_the_tables_whole(fixtures, tmp_path):
    odd = tmp_path / "run |one\ntwo"
    shutil.copytree(fixtures / "latency-before", odd)
    r = run("report.py", str(odd), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            want = len(re.findall(r"(?<!\\)\|", line))
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(re.findall(r"(?<!\\)\|", lines[j])) == want, lines[j]
                j += 1
    assert "run \\|one two" in md


def test_webbench_help_and_bad_input_change_nothing(tmp_path):
    """`scripts/webbench --help` and bad input run before anything is
    installed: no apt-get, no systemctl, no virtualenv."""
    copy = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, copy, ignore=shutil.ignore_patterns(".venv", "tests", "__pycache__"))
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("apt-get", "systemctl", "pip", "nginx", "wrk"):
        (fake / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {log}\n")
        (fake / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    for args, code, needle in [
        (["--help"], 0, "usage: scripts/webbench"),
        (["--out", str(tmp_path / "o"), "--rounds", "0"], 2, "--rounds 0"),
        ([], 2, "--out"),
        (["--out", str(tmp_path / "o"), "--body", "huge"], 2, "--body"),
    ]:
        r = subprocess.run(["bash", str(copy / "webbench"), *args], capture_output=True, text=True, env=env)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert needle in (r.stdout + r.stderr), (args, r.stdout, r.stderr)
        if code:
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not log.exists(), log.read_text()
    assert not (copy / ".venv").exists()


def test_every_column_the_scripts_read_is_in_the_schema():
    """The scripts read only what sockbench writes: each column runs.py
    needs is a field of the Rust types' schema (docs/results-schema.json,
    generated by tests/schema.rs), and every field webbench writes is one
    of its web rows."""
    from scripts import resultfiles
    latency = resultfiles.schema_properties("CaseJson_for_CaseRow")
    throughput = resultfiles.schema_properties("CaseJson_for_ThroughputRow")
    for col in resultfiles.CASE_KEY + resultfiles.OPTIONAL_KEY + resultfiles.NEEDED_LATENCY:
        assert col in latency, f"resultfiles.py reads {col}, which a latency case does not have"
    for col in resultfiles.CASE_KEY + resultfiles.NEEDED_THROUGHPUT:
        assert col in throughput, f"resultfiles.py reads {col}, which a throughput case does not have"
    web = resultfiles.schema_properties("WebRow")
    for c in summary(os.path.join(FIX, "web"))["cases"]:
        assert set(c) <= web, set(c) - web


def test_report_knobs_section_and_compare_aa_spread(fixtures, tmp_path):
    """A knob run (--nodelay on,off --control): the report quotes every
    knob ratio with its A/A CI and verdict and draws one figure per knob;
    its other tables read the baseline cases only; compare lists each run's
    A/A spread and leaves the control copies out of its per-case rows."""
    k = fixtures / "knobs"
    out = tmp_path / "rep"
    r = run("report.py", str(k), "-o", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    d = summary(k)
    knob = [x for x in d["ratios"] if x["knob"] is not None and x["metric"] == "p50"]
    assert {x["knob"] for x in knob} == {"nodelay", "control"}
    section = md[md.index("## Knobs"):md.index("## Figures")]
    for x in knob:
        aa = f"{x['aa_low']:.3f}–{x['aa_high']:.3f}" if x["aa_low"] is not None else "–"
        assert (f"| {x['knob_values']} | – | p50 | {x['ratio']:.3f} ({x['ci_low']:.3f}–{x['ci_high']:.3f}) "
                f"| {aa} | {x['verdict']} |") in section, x
    assert (out / "figures" / "knob_nodelay.png").stat().st_size > 1000
    assert "figures/knob_nodelay.png" in section
    # The headline is the baseline's: its p50, not a variant's.
    base = {c["transport"]: c for c in d["cases"] if c["knobs"] == ""}
    head = md[md.index("## Headline"):md.index("## Knobs")]
    assert f"| 64 | {base['tcp4']['p50_ns'] / 1e3:.2f} | {base['uds-stream']['p50_ns'] / 1e3:.2f} |" in head
    k2 = tmp_path / "knobs-again"  # a second run (a copy): one run on both sides is refused
    shutil.copytree(k, k2)
    r = run("compare.py", str(k), str(k2), "-o", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    cmp = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## Each run's A/A spread" in cmp
    for x in [x for x in d["ratios"] if x["knob"] == "control"]:
        assert f"{x['ratio']:.3f} ({x['ci_low']:.3f}–{x['ci_high']:.3f})" in cmp
    per_case = cmp[cmp.index("## Verdicts"):cmp.index("## What differs")]
    # Two rows (p50, p99) per case; the A/A copies are not cases.
    assert per_case.count("| latency ") == 2 * len([c for c in d["cases"] if not c["aa_control"]])
    assert "| latency tcp4 64 [nodelay=off] |" in per_case


def test_report_draws_where_the_microseconds_go(fixtures, tmp_path):
    """An `explain` run: the layers table quotes the run's own figures, the
    sum checks and answers are there, and the waterfall figure is drawn."""
    src = fixtures / "explain"
    out = tmp_path / "rep"
    r = run("report.py", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    e = summary(src)["explained"]
    assert "## Where the µs of a round trip go" in md
    for x in e["layers"]:
        rungs = x["upper"] if x["lower"] is None else f"{x['upper']} − {x['lower']}"
        assert f"| {rungs}" in md and f"| {x['us']:.2f} | {x['ci_low_us']:.2f}–{x['ci_high_us']:.2f} |" in md, x
    for g in e["sums"]:
        assert f"{g['sum_us']:.2f} µs" in md and f"{g['top_us']:.2f} µs" in md
    assert (out / "figures" / "layers.png").stat().st_size > 1000
    assert "figures/layers.png" in md


def test_a_malformed_explained_section_is_one_fatal_line(fixtures):
    src = fixtures / "explain"
    doc = summary(src)
    doc["explained"]["layers"][0]["us"] = "fast"
    (src / "summary.json").write_text(json.dumps(doc))
    r = run("report.py", str(src))
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "fatal:" in r.stderr and "explained" in r.stderr, r.stderr


def test_stamped_trials_load_and_bad_stamps_are_one_fatal_line(fixtures, tmp_path):
    """`--trace stamp` trial points (an order, five span medians, counts)
    are read; stamps that are not that are one fatal line naming the case."""
    src = fixtures / "explain"
    doc = summary(src)
    tcp = next(c for c in doc["cases"] if c["transport"] == "tcp4")
    tcp["trial_points"][0]["stamps"] = {"order": "returns_first", "p50_ns": [1800, 400, 9000, 19600, 23200],
                                        "stamped": 5900, "other_order": 2, "unusable": 0}
    (src / "summary.json").write_text(json.dumps(doc))
    r = run("report.py", str(src), "-o", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    tcp["trial_points"][0]["stamps"]["p50_ns"] = ["fast"] * 5
    (src / "summary.json").write_text(json.dumps(doc))
    r = run("report.py", str(src), "-o", str(tmp_path / "rep2"))
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "trial point 0" in r.stderr, r.stderr


def test_outputs_are_readable_and_a_comparison_leaves_the_runs_alone(fixtures, tmp_path):
    """report.md, compare.md and the figures get the mode a plain file
    would (0644 under umask 022), not mkstemp's 0600; compare's default
    output is a directory of its own in the current one, never inside the
    AFTER run."""
    before, after = fixtures / "latency-before", fixtures / "latency-after"
    listing = sorted(p.name for p in after.iterdir())
    old = os.umask(0o022)
    try:
        r = run("compare.py", str(before), str(after), cwd=tmp_path)
        rep = run("report.py", str(after), "-o", str(tmp_path / "rep"))
    finally:
        os.umask(old)
    assert r.returncode == 0 and rep.returncode == 0, r.stderr + rep.stderr
    assert sorted(p.name for p in after.iterdir()) == listing
    out = tmp_path / "compare-latency-before-vs-latency-after"
    files = [out / "compare.md", *(out / "figures").iterdir(), tmp_path / "rep" / "report.md",
             *(tmp_path / "rep" / "figures").iterdir()]
    assert len(files) > 4
    for f in files:
        assert (f.stat().st_mode & 0o777) == 0o644, (f, oct(f.stat().st_mode))


def test_one_ratio_convention_and_no_ci_below_five_rounds(fixtures, tmp_path):
    """Every ratio divides time: a schema-2 throughput ratio of bytes/s is
    read as its inverse, time per byte (below 1 faster); a ratio whose run
    had too few rounds (CI null, schema 3) prints its point value and
    `n/a (3 rounds)`, and the report draws it without an error bar."""
    thr, lat = fixtures / "throughput", fixtures / "latency-before"
    old = next(x for x in summary(thr)["ratios"] if x["metric"] == "bytes_per_s" and x.get("knob") is None
               and (x["numerator"], x["denominator"]) == ("uds-stream", "tcp4"))
    doc = summary(lat)
    doc["schema_version"] = 3
    few = next(x for x in doc["ratios"] if x["metric"] == "p50" and x.get("knob") is None
               and (x["numerator"], x["denominator"]) == ("uds-stream", "tcp4"))
    few.update(ci_low=None, ci_high=None, rounds=3, verdict="too few rounds")
    (lat / "summary.json").write_text(json.dumps(doc))
    r = run("report.py", str(lat), str(thr), "-o", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"{1 / old['ratio']:.3f} ({1 / old['ci_high']:.3f}–{1 / old['ci_low']:.3f})" in md
    assert f"{few['ratio']:.3f} (n/a (3 rounds))" in md
    assert "time per byte" in md and "above 1" not in md


def test_every_figure_names_what_it_shows(fixtures, tmp_path, monkeypatch):
    """Without seeing pixels: every figure the report draws from the
    fixtures has a title, axis labels that say their unit, legend entries
    that are unique and human (no internal names, one unit style: no
    "4K B"), and at least two labelled ticks on each value axis."""
    import re
    import matplotlib
    matplotlib.use("Agg")
    from scripts import plots, report
    seen = []
    real = plots.base.save

    def keep(fig, out_dir, name):
        seen.append((name, fig))
        return real(fig, out_dir, name)
    monkeypatch.setattr(plots.base, "save", keep)
    runs = [str(fixtures / d) for d in ("latency-before", "latency-after", "throughput", "connect", "netns",
                                        "knobs", "explain", "load", "web", "soak", "pairs")]
    monkeypatch.setattr(sys, "argv", ["report", *runs, "-o", str(tmp_path / "rep")])
    report.main()
    names = [n for n, _ in seen]
    for must in ("ladder", "load_vs_rate", "web_latency", "drift", "connection_rate", "latency_vs_size",
                 "pairs_scaling", "netns_latency", "throughput_vs_size"):
        assert must in names, names
    field = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
    unit = re.compile(r"µs|ms|Gbit/s|/s|%|÷|ratio|bytes|B\b|KiB|MiB|percentile|pairs|round|descriptors")
    for name, fig in seen:
        axes = [ax for ax in fig.axes if ax.has_data()]
        assert axes, name
        titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
        assert any(t.strip() for t in titles), f"{name}: no title"
        for ax in axes:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                if label:  # "95% CI" says how sure, not what unit
                    assert unit.search(label.replace("95% CI", "")), f"{name}: axis label without a unit: {label!r}"
                # A field name (bytes_per_s, ns_per_byte) is not words.
                assert not field.search(label), f"{name}: a field name in an axis label: {label!r}"
            assert ax.get_xlabel() or ax.get_ylabel(), f"{name}: unlabelled axes"
            if name.startswith("knob_"):  # grey bands said only where drawn
                assert ("grey" in ax.get_xlabel()) == bool(ax.patches), f"{name}: {ax.get_xlabel()!r}"
            # Every legend, the axes' and the figure's: each entry once, in words.
            for legend in [ax.get_legend()] + list(fig.legends):
                if not legend:
                    continue
                texts = [t.get_text() for t in legend.get_texts()]
                assert len(texts) == len(set(texts)), f"{name}: legend entries repeat: {texts}"
                for t in texts:
                    assert not re.search(r"http-\w+-app|\dK B|_ns\b", t), f"{name}: legend {t!r}"
            fig.canvas.draw()
            # Named categories (a bar per transport, a row per question):
            # each name once, so no two bars read alike.
            for cats in (ax.get_xticklabels(), ax.get_yticklabels()):
                texts = [t.get_text() for t in cats if t.get_text()]
                if texts and all(re.search(r"[a-z]{3}", t) for t in texts):
                    assert len(texts) == len(set(texts)), f"{name}: categories repeat: {texts}"
                    for t in texts:
                        assert not re.search(r"http-\w+-app|\dK B", t), f"{name}: category {t!r}"
            ticks = [t for t in ax.get_yticklabels() if t.get_text()]
            lo, hi = ax.get_ylim()
            inside = [t for t in ticks if min(lo, hi) <= t.get_position()[1] <= max(lo, hi)]
            if ax.get_yscale() == "log":  # major and minor: a log axis with one tick says little
                inside += [t for t in ax.yaxis.get_minorticklabels() if t.get_text()
                           and min(lo, hi) <= t.get_position()[1] <= max(lo, hi)]
            if not ax.get_yticklabels()[0].get_text().isalpha():
                assert len(inside) >= 2 or name.startswith(("knob_", "layers", "ladder", "delta")), \
                    f"{name}: {len(inside)} labelled y ticks"


def test_rates_read_as_people_say_them():
    from scripts.labels import rate_words
    assert [rate_words(v) for v in (800, 1140, 9960, 154432, 999_600, 1_200_000, 25_000_000)] == \
        ["800/s", "1.1k/s", "10k/s", "154k/s", "1M/s", "1.2M/s", "25M/s"]

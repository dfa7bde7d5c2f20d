"""scripts/compare across runs: the run is the unit. Sets of runs are made
from a real run (fixtures/latency-before) by scaling its trials with a
run-to-run factor and a trial-to-trial factor, so that the truth is known:
an A/A must give no verdict, a real change must be found with enough runs
and not claimed from one run per side; bad input is one line, exit 2; the
statistics need nothing but Python."""
import json
import os
import random
import shutil
import statistics

import pytest

from scripts import runstats
from scripts.tests.test_scripts import FIX, run, summary

LAT = os.path.join(FIX, "latency-before")


def make_runs(where, n, factor=1.0, seed=1, run_sd=0.03, trial_sd=0.02):
    """`n` runs under `where` (a side directory): the fixture's trials, each
    run scaled by factor × a run factor, each trial by a trial factor."""
    rng = random.Random(seed)
    doc = summary(LAT)
    os.makedirs(where, exist_ok=True)
    for i in range(n):
        d = os.path.join(where, f"run{i}")
        shutil.copytree(LAT, d)
        run_f = factor * rng.lognormvariate(0, run_sd)
        out = json.loads(json.dumps(doc))
        for c in out["cases"]:
            base = statistics.median(t["p50_ns"] for t in c["trial_points"])
            base99 = statistics.median(t["p99_ns"] for t in c["trial_points"])
            for t in c["trial_points"]:
                t["p50_ns"] = base * run_f * rng.lognormvariate(0, trial_sd)
                t["p99_ns"] = base99 * run_f * rng.lognormvariate(0, trial_sd)
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump(out, f)
    return where


def compared(tmp_path, *args):
    out = tmp_path / "cmp"
    r = run("compare.py", *map(str, args), "-o", str(out), "--no-figure")
    assert r.returncode == 0, r.stderr
    return json.loads((out / "compare.json").read_text()), (out / "compare.md").read_text(), r.stdout


def test_an_aa_of_runs_gives_no_verdict_and_states_what_it_can_detect(tmp_path):
    before = make_runs(tmp_path / "before", 6, seed=1)
    after = make_runs(tmp_path / "after", 6, seed=2)
    doc, md, out = compared(tmp_path, before, after)
    assert len(doc["rows"]) == 12  # 6 cases, p50 and p99
    assert all(r["verdict"] == "~" for r in doc["rows"]), [(r["case"], r["change"], r["p"]) for r in doc["rows"]]
    assert all(r["runs"] == [6, 6] and r["noise"] and r["detectable"] > r["noise"] for r in doc["rows"])
    # The side value is the median of the runs' medians.
    for which, side in (("before", before), ("after", after)):
        runs = [summary(os.path.join(side, d)) for d in sorted(os.listdir(side))]
        meds = [statistics.median(t["p50_ns"] for t in s["cases"][0]["trial_points"]) for s in runs]
        c = runs[0]["cases"][0]
        row = next(r for r in doc["rows"] if r["case"] == f"latency {c['transport']} 64" and r["metric"] == "p50")
        assert row[which] == pytest.approx(statistics.median(meds))
    assert "Smallest change these runs detect" in out and "runs per side" in out
    assert "| runs for ±5% |" in md


def test_a_real_change_across_runs_is_found_with_its_ci(tmp_path):
    before = make_runs(tmp_path / "before", 6, seed=3)
    after = make_runs(tmp_path / "after", 6, factor=0.88, seed=4)
    doc, md, out = compared(tmp_path, before, after)
    for r in doc["rows"]:
        assert r["verdict"] == "faster", r
        assert r["ci_low"] < -0.12 < r["ci_high"] < 0 and r["p"] < 0.01
    assert "faster" in out


def test_one_run_per_side_prints_the_change_and_no_verdict(tmp_path):
    before = make_runs(tmp_path / "before", 1, seed=3)
    after = make_runs(tmp_path / "after", 1, factor=0.88, seed=4)
    doc, md, out = compared(tmp_path, before, after)
    assert all(r["verdict"] == "no verdict" and r["noise"] is None and r["p"] is None for r in doc["rows"])
    assert all(r["change"] < 0 for r in doc["rows"])
    assert "run-to-run noise is unknown" in out and "record.sh --side" in out


def test_sides_given_as_lists_of_runs_after_a_double_dash(tmp_path):
    before = make_runs(tmp_path / "before", 3, seed=5)
    after = make_runs(tmp_path / "after", 3, factor=0.88, seed=6)
    b = [os.path.join(before, d) for d in sorted(os.listdir(before))]
    a = [os.path.join(after, d) for d in sorted(os.listdir(after))]
    doc, _, out = compared(tmp_path, *b, "--", *a)
    assert all(r["runs"] == [3, 3] for r in doc["rows"])
    # 3 against 3 runs: the U test's smallest p is 0.1, so no verdict can be faster.
    assert all(r["verdict"] == "~" for r in doc["rows"])
    assert "cannot reach p < 0.05" in out


def test_compare_needs_nothing_but_python(tmp_path):
    """numpy, scipy and matplotlib made unimportable: --help and a
    comparison with --no-figure still work."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for m in ("numpy", "scipy", "matplotlib"):
        (stubs / f"{m}.py").write_text(f"raise ImportError('{m} is not installed here')\n")
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=f"{stubs}:{root}")
    before = make_runs(tmp_path / "before", 2, seed=1)
    after = make_runs(tmp_path / "after", 2, seed=2)
    for args in (["--help"], [str(before), str(after), "--no-figure", "-o", str(tmp_path / "c")]):
        r = subprocess.run([sys.executable, "-m", "scripts.compare", *args], capture_output=True, text=True,
                           env=env)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "compare.md").exists()


def test_bad_runs_are_one_line_and_exit_2(tmp_path):
    good = make_runs(tmp_path / "good", 2, seed=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    noresults = tmp_path / "noresults"
    (noresults / "run0").mkdir(parents=True)
    (noresults / "run0" / "README.md").write_text("a run that never finished\n")
    truncated = tmp_path / "truncated"
    shutil.copytree(os.path.join(good, "run0"), truncated)
    text = (truncated / "summary.json").read_text()
    (truncated / "summary.json").write_text(text[:len(text) // 2])
    thr = os.path.join(FIX, "throughput")
    nopoints = tmp_path / "nopoints"
    shutil.copytree(os.path.join(good, "run0"), nopoints)
    doc = json.loads((nopoints / "summary.json").read_text())
    for c in doc["cases"]:
        del c["trial_points"]
    (nopoints / "summary.json").write_text(json.dumps(doc))
    for args, needle in [
        ([good, empty], "holds no run"),
        ([good, noresults], "holds no run"),
        ([good, truncated], "not valid JSON"),
        ([good, thr], "same workload"),
        ([good, "--"], "AFTER"),
        ([good, good, good], "3 runs given"),
        ([good, good, "--target", "0"], "--target '0'"),
        ([good, good], "on both sides"),
        ([os.path.join(good, "run0"), os.path.join(good, "run0"), "--", os.path.join(good, "run1")], "named twice"),
        ([good, nopoints], "no trial_points"),
    ]:
        r = run("compare.py", *map(str, args), "--no-figure", "-o", str(tmp_path / "out"))
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fatal: ") and needle in lines[0], (args, r.stderr)
        assert not (tmp_path / "out").exists()


def test_the_u_test_agrees_with_scipy():
    from scipy import stats
    rng = random.Random(7)
    for n, m in [(2, 2), (3, 4), (4, 4), (6, 6), (5, 8), (12, 12)]:
        xs = [rng.gauss(0, 1) for _ in range(n)]
        ys = [rng.gauss(0.8, 1) for _ in range(m)]
        method = "exact" if runstats.math.comb(n + m, n) <= runstats.EXACT_LIMIT else "asymptotic"
        want = stats.mannwhitneyu(xs, ys, alternative="two-sided", method=method).pvalue
        assert runstats.mann_whitney_p(xs, ys) == pytest.approx(want, rel=1e-6, abs=1e-9), (n, m)
    ties = [1, 1, 2, 3], [2, 3, 3, 4]
    assert runstats.mann_whitney_p(*ties) == pytest.approx(
        stats.permutation_test(ties, lambda x, y: abs(stats.mannwhitneyu(x, y).statistic - 8),
                               permutation_type="independent", alternative="greater").pvalue, abs=1e-9)
    assert runstats.mann_whitney_p([1], [2, 3]) is None
    assert runstats.smallest_p(3, 3) == pytest.approx(0.1)
    assert runstats.smallest_p(4, 4) < runstats.ALPHA


def test_a_verdict_needs_p_a_ci_that_excludes_0_and_a_change_beyond_the_noise():
    v = runstats.verdict
    assert v(-0.10, -0.14, -0.06, 0.002, 0.03) == "faster"
    assert v(+0.10, +0.06, +0.14, 0.002, 0.03) == "slower"
    assert v(-0.10, -0.14, -0.06, 0.06, 0.03) == "~"      # p too large
    assert v(-0.10, -0.14, +0.01, 0.002, 0.03) == "~"     # CI holds 0
    assert v(-0.02, -0.03, -0.01, 0.002, 0.03) == "~"     # within the runs' own noise
    assert v(-0.10, -0.14, -0.06, None, None) == "no verdict"


def test_an_aa_of_runs_rarely_claims_a_change():
    """Thirty A/As of 6 against 6 simulated runs (5% run-to-run, 2% trial
    noise): at most two verdicts (the test's 5% would allow 1.5 on average),
    where a CI over the pooled trials claims a change in most; and a 15%
    change in the same noise is found in at least 27 of 30."""
    rng = random.Random(11)

    def side(factor):
        runs = []
        for _ in range(6):
            f = factor * rng.lognormvariate(0, 0.05)
            runs.append([f * rng.lognormvariate(0, 0.02) for _ in range(10)])
        return runs

    def verdict(b, a):
        ch, lo, hi = runstats.change_ci(b, a)
        p = runstats.mann_whitney_p([statistics.median(r) for r in b], [statistics.median(r) for r in a])
        return runstats.verdict(ch, lo, hi, p, runstats.noise(b, a))
    def flat(b, a):
        # What the old compare did: every trial of a side as one run.
        ch, lo, hi = runstats.change_ci([sum(b, [])], [sum(a, [])])
        return lo > 0 or hi < 0
    sides = [(side(1), side(1)) for _ in range(30)]
    aa = [verdict(b, a) for b, a in sides]
    assert sum(x != "~" for x in aa) <= 2, aa
    # Pooling the trials hides the run-to-run noise: many A/As "change"
    # (12 of these 30: docs/comparing.md).
    assert sum(flat(b, a) for b, a in sides) >= 10
    real = [verdict(side(1), side(0.85)) for _ in range(30)]
    assert sum(x == "faster" for x in real) >= 27, real


def test_the_wrapper_installs_nothing_for_help_or_no_figure(tmp_path):
    """`scripts/compare --help` and `--no-figure` run the system python3:
    the venv named by SOCKBENCH_VENV is never made."""
    import subprocess
    venv = tmp_path / "venv"
    env = dict(os.environ, SOCKBENCH_VENV=str(venv))
    script = os.path.join(os.path.dirname(FIX), "..", "compare")
    before = make_runs(tmp_path / "before", 2, seed=1)
    after = make_runs(tmp_path / "after", 2, seed=2)
    for args in (["--help"], [str(before), str(after), "--no-figure", "-o", str(tmp_path / "c")]):
        r = subprocess.run(["bash", script, *args], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert "installing" not in r.stderr and "making" not in r.stderr, r.stderr
    # Bad input, without --no-figure: one line, exit 2, and still nothing installed.
    r = subprocess.run(["bash", script, str(before), str(tmp_path / "nothing-here")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not venv.exists()
    assert "usage: scripts/compare" in subprocess.run(["bash", script, "-h"], capture_output=True, text=True,
                                                      env=env).stdout


def test_record_side_puts_each_run_of_a_set_in_its_side(tmp_path):
    """`record.sh --side` twice per side: four runs in one set directory,
    two per side, each with its README; a bad side or label is exit 2."""
    import subprocess
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(FIX), "..", "record.sh"), repo / "scripts" / "record.sh")
    fake = repo / "target" / "release" / "sockbench"
    fake.parent.mkdir(parents=True)
    # A stand-in for the binary: writes what a run writes (env.json) where --out says.
    fake.write_text('#!/bin/sh\nfor a; do out=$a; done\nmkdir -p "$out"\n'
                    'echo \'{"git_revision": "abc"}\' > "$out/env.json"\necho "a table"\n')
    fake.chmod(0o755)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "cargo").write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "cargo").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=repo, check=True, env=env)
    for side in ("before", "after", "after", "before"):
        r = subprocess.run(["bash", "scripts/record.sh", "--side", side, "my-change", "latency", "-s", "64"],
                           cwd=repo, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        import time
        time.sleep(1.1)  # a run's directory is named to the second
    sets = list((repo / "results").iterdir())
    assert len(sets) == 1 and sets[0].name.endswith("-my-change"), sets
    for side in ("before", "after"):
        runs = list((sets[0] / side).iterdir())
        assert len(runs) == 2 and all((d / "README.md").exists() for d in runs), runs
    # A label the set's label merely ends with makes a set of its own.
    r = subprocess.run(["bash", "scripts/record.sh", "--side", "before", "change", "latency", "-s", "64"],
                       cwd=repo, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "joining" not in r.stderr, r.stderr
    assert len(list((repo / "results").iterdir())) == 2
    for args in (["--side", "before", "*", "latency"], ["--side", "../x", "l", "latency"], ["--side", "", "l", "latency"], ["--side", "a", "x/y", "latency"]):
        r = subprocess.run(["bash", "scripts/record.sh", *args], cwd=repo, capture_output=True, text=True, env=env)
        assert r.returncode == 2 and r.stderr.startswith("fatal: "), (args, r.stderr)


def test_a_kernel_change_on_one_machine_is_not_different_hardware(tmp_path):
    """MemTotal moves by a few hundred KiB between kernels, and nosmt turns
    SMT off: compared, and listed; a machine with 10% more memory is refused."""
    before = make_runs(tmp_path / "before", 2, seed=1)
    after = make_runs(tmp_path / "after", 2, seed=2)

    def set_env(side, **kv):
        for d in os.listdir(side):
            f = os.path.join(side, d, "summary.json")
            doc = json.load(open(f))
            doc["env"].update(kv)
            json.dump(doc, open(f, "w"))
    mem = summary(LAT)["env"]["memory_total_kib"]
    set_env(after, memory_total_kib=mem - 436, smt_active=not summary(LAT)["env"].get("smt_active"))
    doc, md, _ = compared(tmp_path, before, after)
    assert "smt_active" in md.split("## What differs in the fingerprint")[1]
    set_env(after, memory_total_kib=int(mem * 1.1))
    r = run("compare.py", str(before), str(after), "--no-figure", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "different hardware (memory_total_kib" in r.stderr, r.stderr


def test_a_reader_that_goes_away_loses_nothing(tmp_path):
    """`compare ... | head -1`: the files are written first, and the closed
    pipe is no traceback."""
    import subprocess
    import sys
    before = make_runs(tmp_path / "before", 2, seed=1)
    after = make_runs(tmp_path / "after", 2, seed=2)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = (f"{sys.executable} -m scripts.compare {before} {after} --no-figure -o {tmp_path / 'c'} "
           f"| head -c 10")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=root))
    assert "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "c" / "compare.md").exists() and (tmp_path / "c" / "compare.json").exists()

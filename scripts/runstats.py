"""Comparing sets of runs, with the standard library only: a bare machine
can tell a change from noise; figures are an extra.

Between a before and an after (a kernel, a boot parameter, a setting
applied by hand), the unit that varies is the run: a boot, a process, a
placement of pages. So each side is several runs and each run several
trials. A side's value is the median over its runs of each run's median
trial; the change is after ÷ before − 1, of time per operation (per byte
for throughput): below 0 is faster.

- CI: a two-level bootstrap (Kalibera & Jones, "Rigorous Benchmarking in
  Reasonable Time", ISMM 2013): draw the runs with replacement, then each
  drawn run's trials, and take the 2.5th and 97.5th percentiles of the
  change. With one run per side it holds the trials' spread only.
- p: the Mann-Whitney U test on the run medians, exact for small sets (as
  Go's benchstat does with its samples).
- noise: the half-width of the same CI for an A/A, drawn from both sides'
  runs, each rescaled to its side's value (and its distance from that
  value widened by √(n/(n−1)), for the value it was measured against).
  A change inside it is one these runs cannot tell from noise.
- detectable: the change this design finds with 80% power at p < 0.05,
  noise × (1.96 + 0.84) / 1.96; runs per side for a target scale with the
  square of detectable ÷ target (and are at least MIN_RUNS, the fewest for
  which the U test can give p < 0.05).
"""
import itertools
import math
import random
import statistics

RESAMPLES = 10_000
ALPHA = 0.05
Z = statistics.NormalDist().inv_cdf(1 - ALPHA / 2)
POWER_Z = statistics.NormalDist().inv_cdf(0.80)
MIN_RUNS = 4  # 3 vs 3 runs: the smallest two-sided U-test p is 0.1
EXACT_LIMIT = 50_000  # orderings the U test enumerates before it approximates


def run_value(trials):
    return statistics.median(trials)


def side_value(runs):
    """A side's value: the median of its runs' medians."""
    return statistics.median(run_value(r) for r in runs)


def _draw(rng, runs, k):
    """One two-level resample: k runs drawn, each one's trials drawn."""
    return statistics.median(statistics.median(rng.choices(r, k=len(r))) for r in rng.choices(runs, k=k))


def _interval(draws):
    cuts = statistics.quantiles(draws, n=40)  # 2.5%, 5%, …, 97.5%
    return cuts[0], cuts[-1]


def change_ci(before, after, seed=1):
    """(change, ci_low, ci_high): after ÷ before − 1 of the side values,
    with the two-level bootstrap's 95% CI. `before` and `after` are lists
    of runs, each a list of trial values."""
    point = side_value(after) / side_value(before) - 1
    rng = random.Random(seed)
    draws = [_draw(rng, after, len(after)) / _draw(rng, before, len(before)) - 1 for _ in range(RESAMPLES)]
    lo, hi = _interval(draws)
    return point, lo, hi


def _centred(runs):
    """The runs of one side, each scaled so that its median sits at its
    distance from the side's value (widened by √(n/(n−1))) around 1."""
    v, n = side_value(runs), len(runs)
    widen = math.sqrt(n / (n - 1)) if n > 1 else 1.0
    out = []
    for r in runs:
        m = run_value(r)
        target = 1 + (m / v - 1) * widen
        out.append([x * target / m for x in r])
    return out


def noise(before, after, seed=2):
    """Half-width of a 95% CI of an A/A with these runs' counts, drawn from
    both sides' centred runs: the change these runs cannot tell from noise.
    None when a side has a single run (run-to-run noise is unknown)."""
    if min(len(before), len(after)) < 2:
        return None
    pool = _centred(before) + _centred(after)
    rng = random.Random(seed)
    draws = [_draw(rng, pool, len(after)) / _draw(rng, pool, len(before)) - 1 for _ in range(RESAMPLES)]
    lo, hi = _interval(draws)
    return (hi - lo) / 2


def _midranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_p(xs, ys):
    """Two-sided p of the Mann-Whitney U test: exact (every split of the
    pooled ranks, ties at mid-rank) up to EXACT_LIMIT splits, else the
    normal approximation with the tie correction. None below 2 per side."""
    n, m = len(xs), len(ys)
    if n < 2 or m < 2:
        return None
    ranks = _midranks(list(xs) + list(ys))
    mean = n * m / 2
    shift = n * (n + 1) / 2
    dev = abs(sum(ranks[:n]) - shift - mean)
    total = math.comb(n + m, n)
    if total <= EXACT_LIMIT:
        hits = sum(1 for c in itertools.combinations(ranks, n) if abs(sum(c) - shift - mean) >= dev - 1e-9)
        return hits / total
    size = n + m
    ties = sum(t ** 3 - t for t in (ranks.count(r) for r in set(ranks)))
    sigma = math.sqrt(n * m / 12 * ((size + 1) - ties / (size * (size - 1))))
    if sigma == 0:  # every value the same: no evidence of a shift
        return 1.0
    z = max(dev - 0.5, 0) / sigma
    return min(1.0, 2 * (1 - statistics.NormalDist().cdf(z)))


def smallest_p(n, m):
    """The smallest two-sided p the U test can give with n and m runs."""
    return 2 / math.comb(n + m, n) if min(n, m) >= 1 else 1.0


def detectable(noise_half_width):
    """The change found with 80% power at p < 0.05, given an A/A half-width."""
    return noise_half_width * (Z + POWER_Z) / Z


def runs_needed(detect, runs_per_side, target):
    """Runs per side for `target` (a fraction) to be detectable."""
    return max(MIN_RUNS, math.ceil(runs_per_side * (detect / target) ** 2))


def verdict(change, lo, hi, p, noise_half_width):
    """faster or slower only when p < ALPHA, the CI excludes 0 and the
    change is larger than the runs' own A/A noise; "~" (no change at this
    resolution) otherwise; "no verdict" without run-to-run noise."""
    if noise_half_width is None or p is None:
        return "no verdict"
    if p >= ALPHA or lo <= 0 <= hi or abs(change) <= noise_half_width:
        return "~"
    return "faster" if change < 0 else "slower"

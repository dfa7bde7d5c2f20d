"""The one statistical rule every script uses: medians with 95%
percentile-bootstrap CIs, and the relative change of a median between two
sets (numpy and scipy, imported when called)."""


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

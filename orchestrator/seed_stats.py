"""Statistics of many seeds: what a 128–1,024-seed study can say that a 3–10-seed one cannot.

    from orchestrator import seed_stats

    resamples = seed_stats.Resamples(scores)            # one bootstrap of the seeds, sorted
    seed_stats.iqm(scores), resamples.interval(resamples.iqms())
    seed_stats.success_rate(scores, 100.0)              # (hits, n, rate, low, high): Wilson
    seed_stats.expected_max(scores, 10)                 # E[best of 10 seeds]
    seed_stats.compare(x, y, paired=False)              # P(X > Y), ΔIQM, p-value, seeds for power
    seed_stats.holm([0.01, 0.04, 0.03])                 # adjusted p-values

Pure NumPy/SciPy on plain arrays of scores (the report's are percentages); nothing here reads a
database or knows what a sweep is. Every estimator says its definition in its docstring; the
report states the same definitions under its tables (``orchestrator.report.Conventions``).

Bootstrap conventions (as the report's mean CI, which these share): percentile intervals from
``BOOTSTRAP_RESAMPLES`` resamples of the seeds with replacement drawn from
``numpy.random.default_rng(BOOTSTRAP_RNG_SEED)`` afresh for each configuration (and for each
comparison), so that every interval is reproducible and independent of what else is reported.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

CI_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_RNG_SEED = 0
QUANTILES = (5, 25, 50, 75, 95)              # percent; numpy's default (linear) interpolation
IQM_CUT = 0.25                               # the interquartile mean trims a quarter each side
EXPECTED_MAX_KS = (1, 3, 10, 32, 128, 1024)  # the curve; the report adds the paper's seed count
BIMODALITY_THRESHOLD = 5 / 9                 # Sarle's bimodality coefficient of a uniform
BIMODAL_MIN_SEEDS = 8                        # fewer seeds: no bimodality verdict
BIMODAL_MIN_MODE_FRACTION = 0.05             # each mode holds at least this share of the seeds
BIMODAL_MAX_DIP = 0.5                        # seeds near the split / a flat density's count there
BIMODAL_WINDOW = 0.1                         # half-width of "near", as a share of the modes' gap
POWER = 0.8
ALPHA = 0.05
_CHUNK_CELLS = 4_000_000                     # resample matrices are built in chunks of this size


# -- one sample --------------------------------------------------------------------------------

def _values(scores: Sequence[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=float).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite numbers")
    return values


def iqm(scores: Sequence[float]) -> float:
    """The interquartile mean: the mean of the scores left after cutting ``floor(n / 4)`` of the
    lowest and as many of the highest (``scipy.stats.trim_mean(scores, 0.25)``; Agarwal et al.,
    2021, "Deep RL at the edge of the statistical precipice")."""
    return float(_iqm_of_sorted_rows(np.sort(_values(scores))[None, :])[0])


def _iqm_of_sorted_rows(sorted_rows: np.ndarray) -> np.ndarray:
    """The IQM of each row of a matrix whose rows are sorted ascending."""
    n = sorted_rows.shape[1]
    cut = int(IQM_CUT * n)
    return sorted_rows[:, cut:n - cut].mean(axis=1)


def quantiles(scores: Sequence[float], qs: Sequence[float] = QUANTILES) -> tuple[float, ...]:
    """The ``qs`` percentiles of the scores, linear interpolation between order statistics
    (``numpy.percentile``'s default)."""
    return tuple(float(v) for v in np.percentile(_values(scores), list(qs)))


def expected_max_weights(n: int, k: int) -> np.ndarray:
    """Weights w of the ascending order statistics with E[max of k of the n seeds drawn without
    replacement] = Σ w_i x_(i): w_i = C(i − 1, k − 1) / C(n, k), i = 1 … n."""
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} needs 1 <= k <= n = {n}")
    i = np.arange(1, n + 1, dtype=float)
    log_w = np.full(n, -np.inf)
    ok = i >= k
    log_w[ok] = (_log_comb(i[ok] - 1, k - 1) - _log_comb(np.float64(n), k))
    weights = np.exp(log_w)
    return weights / weights.sum()           # exact up to rounding; sums to one


def _log_comb(a, b) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(np.asarray(a) + 1) - gammaln(b + 1) - gammaln(np.asarray(a) - b + 1)


def expected_max(scores: Sequence[float], k: int) -> float | None:
    """The expected best score of ``k`` seeds chosen at random from these (without replacement):
    the unbiased estimate of what a study with k seeds would report as its max; k = 1 is the mean,
    k = n the observed max. None where k exceeds the number of seeds."""
    values = np.sort(_values(scores))
    if k > values.size or values.size == 0:
        return None
    return float(expected_max_weights(values.size, k) @ values)


@dataclasses.dataclass(frozen=True)
class SuccessRate:
    """Seeds whose score reaches ``threshold``: ``hits`` of ``n``, with a Wilson interval."""

    threshold: float
    hits: int
    n: int
    rate: float
    low: float
    high: float


def wilson_interval(hits: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion (Wilson 1927), at ``level``."""
    from scipy import stats

    if n <= 0:
        raise ValueError("a proportion needs n >= 1")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def success_rate(scores: Sequence[float], threshold: float,
                 level: float = CI_LEVEL) -> SuccessRate | None:
    """The fraction of seeds scoring at least ``threshold`` (same unit as the scores), with its
    Wilson interval; None without scores. A score within 1e-9 of the threshold reaches it (scores
    are stored as fractions: 100 % is 1.0 × 100)."""
    values = _values(scores)
    if values.size == 0:
        return None
    hits = int(np.sum(values >= threshold - 1e-9))
    low, high = wilson_interval(hits, values.size, level)
    return SuccessRate(float(threshold), hits, int(values.size), hits / values.size, low, high)


@dataclasses.dataclass(frozen=True)
class Modes:
    """A bimodality verdict: Sarle's coefficient and the two modes of the best split in two."""

    coefficient: float | None            # Sarle's bimodality coefficient; None: undefined
    dip: float | None                    # seeds near the split over a flat density's count
    bimodal: bool
    split: float | None                  # scores above this are the upper mode
    low_mean: float | None
    low_fraction: float | None
    high_mean: float | None
    high_fraction: float | None


def bimodality_coefficient(scores: Sequence[float]) -> float | None:
    """Sarle's bimodality coefficient (g² + 1) / (κ + 3 (n − 1)² / ((n − 2)(n − 3))) with g the
    bias-corrected sample skewness and κ the bias-corrected excess kurtosis; above 5/9 (a uniform
    distribution's value) suggests two modes. None below four seeds or without spread."""
    from scipy import stats

    values = _values(scores)
    n = values.size
    if n < 4 or np.ptp(values) == 0:
        return None
    g = float(stats.skew(values, bias=False))
    kappa = float(stats.kurtosis(values, fisher=True, bias=False))
    return (g * g + 1) / (kappa + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def two_means_split(scores: Sequence[float]) -> int | None:
    """The split of the ascending scores into a lower group of s and an upper group of n − s
    seeds that minimises the summed squared deviations from the two group means (1-D two-means,
    exact by a scan); returns s, None below two distinct scores."""
    values = np.sort(_values(scores))
    n = values.size
    if n < 2 or values[0] == values[-1]:
        return None
    s = np.arange(1, n)
    prefix, prefix_sq = np.cumsum(values), np.cumsum(values ** 2)
    total, total_sq = prefix[-1], prefix_sq[-1]
    low_ss = prefix_sq[:-1] - prefix[:-1] ** 2 / s
    high_ss = (total_sq - prefix_sq[:-1]) - (total - prefix[:-1]) ** 2 / (n - s)
    within = low_ss + high_ss
    distinct = values[1:] > values[:-1]          # only split between different scores
    within = np.where(distinct, within, np.inf)
    return int(s[np.argmin(within)])


def dip_ratio(scores: Sequence[float], s: int) -> float | None:
    """How empty the valley between the two modes of the split at ``s`` is: the seeds within
    ``BIMODAL_WINDOW`` × (high mean − low mean) of the split point, over the count a flat density
    between the two mode means would put there (1: flat, 0: an empty valley, > 1: a peak)."""
    values = np.sort(_values(scores))
    low_mean, high_mean = values[:s].mean(), values[s:].mean()
    gap = high_mean - low_mean
    if gap <= 0:
        return None
    split = (values[s - 1] + values[s]) / 2
    half = BIMODAL_WINDOW * gap
    between = np.sum((values >= low_mean) & (values <= high_mean))
    expected = between * 2 * half / gap
    if expected <= 0:
        return None
    return float(np.sum(np.abs(values - split) <= half) / expected)


def modes(scores: Sequence[float]) -> Modes:
    """Bimodal ("works or collapses") when Sarle's coefficient exceeds 5/9, the valley at the
    two-means split is emptier than half a flat density's (``dip_ratio`` < ``BIMODAL_MAX_DIP``),
    there are at least ``BIMODAL_MIN_SEEDS`` seeds and each mode holds at least
    ``BIMODAL_MIN_MODE_FRACTION`` of them (and two seeds); the modes' means and shares are given
    either way."""
    values = np.sort(_values(scores))
    coefficient = bimodality_coefficient(values)
    s = two_means_split(values)
    if s is None:
        return Modes(coefficient, None, False, None, None, None, None, None)
    n = values.size
    smaller = min(s, n - s)
    dip = dip_ratio(values, s)
    bimodal = bool(coefficient is not None and coefficient > BIMODALITY_THRESHOLD
                   and dip is not None and dip < BIMODAL_MAX_DIP
                   and n >= BIMODAL_MIN_SEEDS and smaller >= 2
                   and smaller >= BIMODAL_MIN_MODE_FRACTION * n)
    return Modes(coefficient, dip, bimodal, float((values[s - 1] + values[s]) / 2),
                 float(values[:s].mean()), s / n, float(values[s:].mean()), (n - s) / n)


# -- bootstrap of one configuration's seeds -----------------------------------------------------

def percentile_interval(estimates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.asarray(estimates, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


class Resamples:
    """``resamples`` bootstrap resamples of one configuration's seeds, each sorted, drawn as
    ``rng.integers(0, n, size=(resamples, n))`` from ``default_rng(rng_seed)`` (the draw the
    report's mean CI makes, so all of a configuration's intervals come from one bootstrap)."""

    def __init__(self, scores: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                 rng_seed: int = BOOTSTRAP_RNG_SEED):
        values = _values(scores)
        if values.size == 0:
            raise ValueError("a bootstrap needs at least one score")
        rng = np.random.default_rng(rng_seed)
        self.values = values
        self.sorted = np.sort(values[rng.integers(0, values.size, size=(resamples, values.size))],
                              axis=1)

    def means(self) -> np.ndarray:
        return self.sorted.mean(axis=1)

    def iqms(self) -> np.ndarray:
        return _iqm_of_sorted_rows(self.sorted)

    def expected_maxima(self, k: int) -> np.ndarray:
        return self.sorted @ expected_max_weights(self.values.size, k)

    @staticmethod
    def interval(estimates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
        return percentile_interval(estimates, level)


# -- two configurations -------------------------------------------------------------------------

def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + ½ P(X = Y) for X a seed of ``x`` and Y one of ``y``, both at random: the
    Mann–Whitney U of x over n·m."""
    a, b = _values(x), _values(y)
    greater = (a[:, None] > b[None, :]).sum()
    ties = (a[:, None] == b[None, :]).sum()
    return float((greater + 0.5 * ties) / (a.size * b.size))


def paired_probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X_k > Y_k) + ½ P(X_k = Y_k) over seeds k (x[i] and y[i] are the same seed)."""
    a, b = _values(x), _values(y)
    return float(np.mean((a > b) + 0.5 * (a == b)))


def _rank_u_over_nm(a_idx: np.ndarray, b_idx: np.ndarray, a: np.ndarray, b: np.ndarray
                    ) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) of each resample pair (rows of the index matrices), by midranks."""
    from scipy.stats import rankdata

    n, m = a.size, b.size
    out = np.empty(a_idx.shape[0])
    rows = max(1, _CHUNK_CELLS // (n + m))
    for start in range(0, a_idx.shape[0], rows):
        combined = np.concatenate([a[a_idx[start:start + rows]], b[b_idx[start:start + rows]]],
                                  axis=1)
        ranks = rankdata(combined, axis=1)
        u = ranks[:, :n].sum(axis=1) - n * (n + 1) / 2
        out[start:start + rows] = u / (n * m)
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``x`` against ``y`` (each a configuration's seeds): paired over shared seeds or not."""

    paired: bool
    n_x: int
    n_y: int                             # paired: n_x = n_y = the shared seeds
    probability_of_improvement: float    # P(X > Y) (+ ½ ties); paired: per seed
    poi_low: float
    poi_high: float
    iqm_difference: float                # IQM(x) − IQM(y)
    iqm_difference_low: float
    iqm_difference_high: float
    mean_difference: float               # mean(x) − mean(y)
    test: str                            # "Mann–Whitney U" | "Wilcoxon signed-rank"
    p_value: float | None                # two-sided; None: no test possible
    effect_size: float | None            # Cohen's d (pooled sd) or d_z (paired)
    seeds_for_power: int | None          # seeds per configuration for POWER at ALPHA (t-test)


def _t_test_power(df: int, noncentrality: float, alpha: float) -> float:
    """Power of a two-sided t-test with ``df`` degrees of freedom at this noncentrality."""
    from scipy import stats

    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, noncentrality)
                 + stats.nct.cdf(-critical, df, noncentrality))


def power_two_sample(d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample t-test with n seeds a side at standardised difference d."""
    return _t_test_power(2 * n - 2, abs(d) * math.sqrt(n / 2), alpha)


def power_paired(d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired (one-sample) t-test with n pairs at d_z = mean / sd of the
    differences."""
    return _t_test_power(n - 1, abs(d) * math.sqrt(n), alpha)


def seeds_for_power(d: float | None, paired: bool, power: float = POWER, alpha: float = ALPHA,
                    limit: int = 10_000_000) -> int | None:
    """The fewest seeds per configuration (pairs, when paired) at which the t-test detects a
    standardised difference ``d`` with probability ``power``; None for no difference or beyond
    ``limit``."""
    if d is None or not math.isfinite(d) or d == 0:
        return None
    power_at = power_paired if paired else power_two_sample
    low, high = 2, 2
    while power_at(d, high, alpha) < power:
        low, high = high, high * 2
        if high > limit:
            return None
    while low < high:                              # the smallest n in [low, high] with power
        middle = (low + high) // 2
        if power_at(d, middle, alpha) >= power:
            high = middle
        else:
            low = middle + 1
    return low


def compare(x: Sequence[float], y: Sequence[float], paired: bool,
            resamples: int = BOOTSTRAP_RESAMPLES, rng_seed: int = BOOTSTRAP_RNG_SEED,
            level: float = CI_LEVEL) -> Comparison:
    """x against y. Unpaired: P(X > Y) over all seed pairs, Mann–Whitney U (two-sided), Cohen's d
    with the pooled sd, x and y resampled independently (x's indices drawn first). Paired (x[i],
    y[i] the same seed, trained on the same data): P(X_k > Y_k) over seeds, the Wilcoxon
    signed-rank test (two-sided, zero differences dropped: Wilcoxon's own treatment), d_z, the
    seeds resampled jointly."""
    from scipy import stats

    a, b = _values(x), _values(y)
    if a.size == 0 or b.size == 0:
        raise ValueError("a comparison needs scores on both sides")
    if paired and a.size != b.size:
        raise ValueError(f"paired scores need the same seeds: {a.size} against {b.size}")
    rng = np.random.default_rng(rng_seed)
    if paired:
        idx = rng.integers(0, a.size, size=(resamples, a.size))
        a_idx = b_idx = idx
        poi = paired_probability_of_improvement(a, b)
        boot_poi = np.mean((a[idx] > b[idx]) + 0.5 * (a[idx] == b[idx]), axis=1)
        differences = a - b
        p = None
        if np.any(differences != 0):
            p = float(stats.wilcoxon(a, b, zero_method="wilcox",
                                     alternative="two-sided").pvalue)
        sd = float(differences.std(ddof=1)) if a.size >= 2 else 0.0
        effect = float(differences.mean() / sd) if sd > 0 else None
        test = "Wilcoxon signed-rank"
    else:
        a_idx = rng.integers(0, a.size, size=(resamples, a.size))
        b_idx = rng.integers(0, b.size, size=(resamples, b.size))
        poi = probability_of_improvement(a, b)
        boot_poi = _rank_u_over_nm(a_idx, b_idx, a, b)
        p = None
        if np.ptp(np.concatenate([a, b])) > 0:
            p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        effect = None
        if a.size >= 2 and b.size >= 2:
            pooled = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1))
                               / (a.size + b.size - 2))
            effect = float((a.mean() - b.mean()) / pooled) if pooled > 0 else None
        test = "Mann–Whitney U"
    boot_iqm = (_iqm_of_sorted_rows(np.sort(a[a_idx], axis=1))
                - _iqm_of_sorted_rows(np.sort(b[b_idx], axis=1)))
    poi_low, poi_high = percentile_interval(boot_poi, level)
    diff_low, diff_high = percentile_interval(boot_iqm, level)
    return Comparison(paired, int(a.size), int(b.size), poi, poi_low, poi_high,
                      iqm(a) - iqm(b), diff_low, diff_high, float(a.mean() - b.mean()), test, p,
                      effect, seeds_for_power(effect, paired))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test; left out of the
    family): the i-th smallest of m becomes max over j <= i of min(1, (m − j + 1) p_(j))."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    m = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


# -- the test set's own noise ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TestNoise:
    """One configuration's seeds scored twice: on the fixed test split X (``test_graphs``
    graphs, the same for every seed) and on an independent wide test set W (``graphs``). With
    X_i = μ_i + e_i and W_i = μ_i + f_i, where μ_i is seed i's expected score over the test
    distribution and e, f are the two sets' sampling noise (independent of each other, being
    drawn from different graphs): cov(X, W) = var(μ), the seed variance; var(X) − cov(X, W) =
    var(e), the test split's noise in the seeds' spread. ``shift`` = mean(X − W): how much the
    fixed test split's graphs move every seed together (a paired bootstrap interval)."""

    __test__ = False                   # not a pytest class, despite the name

    seeds: int
    graphs: int
    test_graphs: int
    test_mean: float
    test_std: float
    wide_mean: float
    wide_std: float
    shift: float                       # mean(X − W)
    shift_low: float
    shift_high: float
    correlation: float | None          # Pearson r of X and W across seeds (None: a constant)
    seed_std: float                    # sqrt(seed variance), clipped into [0, std(X)]
    test_noise_std: float              # sqrt(var(X) − seed variance)
    seed_share: float | None           # seed variance / var(X) (None: var(X) = 0)
    seed_share_low: float | None
    seed_share_high: float | None


TEST_NOISE_MIN_SEEDS = 3


def _seed_shares(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise cov(x, w) / var(x) (ddof 1), clipped into [0, 1]; NaN where var(x) = 0."""
    n = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    wc = w - w.mean(axis=-1, keepdims=True)
    var = (xc * xc).sum(axis=-1) / (n - 1)
    cov = (xc * wc).sum(axis=-1) / (n - 1)
    with np.errstate(all="ignore"):
        return np.where(var > 0, np.clip(cov / var, 0.0, 1.0), np.nan)


def test_noise(test: Sequence[float], wide: Sequence[float], test_graphs: int, graphs: int,
               resamples: int = BOOTSTRAP_RESAMPLES, rng_seed: int = BOOTSTRAP_RNG_SEED
               ) -> TestNoise | None:
    """:class:`TestNoise` of paired scores (seed i's test-split and wide-test scores); None
    below ``TEST_NOISE_MIN_SEEDS`` seeds. Intervals: percentile bootstrap over seeds (pairs
    resampled together)."""
    x, w = _values(test), _values(wide)
    if x.size != w.size:
        raise ValueError(f"{x.size} test score(s) but {w.size} wide-test score(s)")
    n = x.size
    if n < TEST_NOISE_MIN_SEEDS:
        return None
    var_x = float(np.var(x, ddof=1))
    cov = float(np.cov(x, w, ddof=1)[0, 1])
    seed_var = min(max(cov, 0.0), var_x)
    share = None if var_x == 0 else seed_var / var_x
    rng = np.random.default_rng(rng_seed)
    shifts, shares = [], []
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, rows):
        idx = rng.integers(0, n, size=(min(rows, resamples - start), n))
        shifts.append((x[idx] - w[idx]).mean(axis=1))
        shares.append(_seed_shares(x[idx], w[idx]))
    shift_low, shift_high = percentile_interval(np.concatenate(shifts))
    shares_all = np.concatenate(shares)
    shares_all = shares_all[np.isfinite(shares_all)]
    share_low, share_high = (percentile_interval(shares_all) if share is not None
                             and shares_all.size else (None, None))
    correlation = (float(np.corrcoef(x, w)[0, 1]) if np.ptp(x) > 0 and np.ptp(w) > 0
                   else None)
    return TestNoise(n, int(graphs), int(test_graphs), float(x.mean()), math.sqrt(var_x),
                     float(w.mean()), float(np.std(w, ddof=1)), float((x - w).mean()),
                     shift_low, shift_high, correlation, math.sqrt(seed_var),
                     math.sqrt(var_x - seed_var), share, share_low, share_high)

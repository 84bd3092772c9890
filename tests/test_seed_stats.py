"""`orchestrator.seed_stats`: every estimator against an independent computation made here
(brute-force enumeration, explicit loops over the same bootstrap draws, textbook formulas solved
numerically, Monte Carlo), never against the module's own helpers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, stats

from orchestrator import seed_stats

RNG = np.random.default_rng(21)


def test_iqm_is_the_mean_of_the_middle_half():
    scores = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 100.0]      # n = 10: cut 2 each side
    middle = sorted(scores)[2:8]
    assert seed_stats.iqm(scores) == pytest.approx(sum(middle) / len(middle))
    many = RNG.normal(50, 10, 1001)
    assert seed_stats.iqm(many) == pytest.approx(stats.trim_mean(many, 0.25), abs=1e-12)
    assert seed_stats.iqm([3.0]) == 3.0


def test_quantiles_interpolate_linearly_between_order_statistics():
    scores = np.array([10.0, 20.0, 30.0, 40.0, 60.0])
    expected = []
    for q in seed_stats.QUANTILES:
        position = (len(scores) - 1) * q / 100          # rank, counted from 0
        low = int(math.floor(position))
        high = min(low + 1, len(scores) - 1)
        expected.append(scores[low] + (position - low) * (scores[high] - scores[low]))
    assert seed_stats.quantiles(scores[::-1]) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_expected_max_is_the_mean_best_of_every_k_subset(k):
    scores = [3.0, 9.5, 1.0, 7.25, 7.25, 4.0, 12.0, 0.5]
    subsets = list(itertools.combinations(scores, k))
    brute = sum(max(s) for s in subsets) / len(subsets)
    assert seed_stats.expected_max(scores, k) == pytest.approx(brute, rel=1e-12)
    assert seed_stats.expected_max(scores, 9) is None


def test_expected_max_ends_at_the_mean_and_the_max():
    scores = RNG.uniform(0, 100, 300)
    assert seed_stats.expected_max(scores, 1) == pytest.approx(scores.mean())
    assert seed_stats.expected_max(scores, 300) == pytest.approx(scores.max())
    curve = [seed_stats.expected_max(scores, k) for k in (1, 3, 10, 32, 128, 300)]
    assert curve == sorted(curve)


def test_bootstrap_intervals_are_those_of_an_explicit_loop_over_the_same_draws():
    scores = RNG.normal(80, 5, 40)
    resamples = seed_stats.Resamples(scores, resamples=500, rng_seed=0)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, scores.size, size=(500, scores.size))
    loop_iqm, loop_max = [], []
    for row in draws:
        sample = scores[row]
        loop_iqm.append(stats.trim_mean(sample, 0.25))
        subsets = None                                    # E[max of 3] by its definition
        ordered = np.sort(sample)
        n = ordered.size
        subsets = sum(ordered[i] * math.comb(i, 2) for i in range(n)) / math.comb(n, 3)
        loop_max.append(subsets)
    assert resamples.interval(resamples.iqms()) == pytest.approx(
        tuple(np.percentile(loop_iqm, [2.5, 97.5])))
    assert resamples.interval(resamples.expected_maxima(3)) == pytest.approx(
        tuple(np.percentile(loop_max, [2.5, 97.5])))


def _wilson_by_inversion(hits, n, level=0.95):
    """The p0 whose score test |p̂ − p0| / sqrt(p0 (1 − p0) / n) equals z, solved numerically."""
    z = stats.norm.ppf(0.5 + level / 2)
    p = hits / n

    def gap(p0):
        return abs(p - p0) / math.sqrt(p0 * (1 - p0) / n) - z

    eps = 1e-12
    low = 0.0 if hits == 0 else optimize.brentq(gap, eps, p - eps)
    high = 1.0 if hits == n else optimize.brentq(gap, p + eps, 1 - eps)
    return low, high


@pytest.mark.parametrize("hits,n", [(0, 10), (5, 10), (10, 10), (3, 128), (1000, 1024)])
def test_wilson_interval_inverts_the_score_test(hits, n):
    assert seed_stats.wilson_interval(hits, n) == pytest.approx(_wilson_by_inversion(hits, n),
                                                                abs=1e-9)


def test_success_rate_counts_seeds_at_the_threshold():
    scores = [100.0, 100.0, 99.99, 95.0, 94.999, 50.0, 100.0 * 1.0]
    exact = seed_stats.success_rate(scores, 100.0)
    assert (exact.hits, exact.n, exact.rate) == (3, 7, 3 / 7)
    assert (exact.low, exact.high) == pytest.approx(_wilson_by_inversion(3, 7))
    assert seed_stats.success_rate(scores, 95.0).hits == 5
    assert seed_stats.success_rate([], 95.0) is None


def test_bimodality_coefficient_from_moments():
    scores = np.r_[RNG.normal(10, 2, 90), RNG.normal(60, 4, 10)]
    n = scores.size
    d = scores - scores.mean()
    m2, m3, m4 = (d ** 2).mean(), (d ** 3).mean(), (d ** 4).mean()
    g1 = m3 / m2 ** 1.5 * math.sqrt(n * (n - 1)) / (n - 2)                # adjusted skewness
    g2 = ((n + 1) * (m4 / m2 ** 2 - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))   # adjusted kurtosis
    expected = (g1 ** 2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    assert seed_stats.bimodality_coefficient(scores) == pytest.approx(expected)
    assert seed_stats.bimodality_coefficient([1.0, 1.0, 1.0, 1.0]) is None


def test_two_means_split_is_the_best_of_every_split():
    scores = np.sort(RNG.normal(0, 1, 30))
    best = min(range(1, 30), key=lambda s: ((scores[:s] - scores[:s].mean()) ** 2).sum()
               + ((scores[s:] - scores[s:].mean()) ** 2).sum())
    assert seed_stats.two_means_split(scores) == best


def test_dip_ratio_counts_seeds_near_the_split():
    scores = np.array([0.0, 1.0, 2.0, 10.0, 50.0, 90.0, 98.0, 99.0, 100.0])
    s = 4                                                    # lower mode 0, 1, 2, 10
    low_mean, high_mean = np.mean(scores[:4]), np.mean(scores[4:])
    split, half = (10.0 + 50.0) / 2, 0.1 * (high_mean - low_mean)
    near = sum(abs(v - split) <= half for v in scores)
    between = sum(low_mean <= v <= high_mean for v in scores)
    assert seed_stats.dip_ratio(scores, s) == pytest.approx(near / (between * 0.2))


def test_modes_flag_works_or_collapses_rows_only():
    collapse = np.r_[RNG.normal(9, 1.5, 115), RNG.normal(58, 6, 13)]      # DFS-like
    m = seed_stats.modes(collapse)
    assert m.bimodal
    assert m.low_fraction == pytest.approx(115 / 128) and m.high_fraction == pytest.approx(13 / 128)
    assert m.low_mean == pytest.approx(np.sort(collapse)[:115].mean())
    assert not seed_stats.modes(RNG.normal(90, 3, 1024)).bimodal            # one normal mode
    assert not seed_stats.modes(RNG.uniform(0, 100, 1024)).bimodal          # flat: 5/9, not above
    assert not seed_stats.modes([10.0, 10.0, 60.0, 60.0]).bimodal          # too few seeds
    one_outlier = np.r_[RNG.normal(95, 1, 127), [20.0]]                     # a mode of one seed
    assert not seed_stats.modes(one_outlier).bimodal


def test_probability_of_improvement_by_pairs():
    x, y = [3.0, 5.0, 5.0, 9.0], [1.0, 5.0, 7.0]
    wins = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    assert seed_stats.probability_of_improvement(x, y) == pytest.approx(wins / 12)
    u = stats.mannwhitneyu(x, y).statistic
    assert seed_stats.probability_of_improvement(x, y) == pytest.approx(u / 12)


def test_unpaired_comparison_against_explicit_loops():
    x, y = RNG.normal(60, 8, 25), RNG.normal(55, 8, 20)
    c = seed_stats.compare(x, y, paired=False, resamples=300)
    rng = np.random.default_rng(0)
    xi = rng.integers(0, x.size, size=(300, x.size))
    yi = rng.integers(0, y.size, size=(300, y.size))
    poi = [np.mean([(a > b) + 0.5 * (a == b) for a in x[i] for b in y[j]]) for i, j in zip(xi, yi)]
    diff = [stats.trim_mean(x[i], 0.25) - stats.trim_mean(y[j], 0.25) for i, j in zip(xi, yi)]
    assert not c.paired and (c.n_x, c.n_y) == (25, 20)
    assert (c.poi_low, c.poi_high) == pytest.approx(tuple(np.percentile(poi, [2.5, 97.5])))
    assert (c.iqm_difference_low, c.iqm_difference_high) == pytest.approx(
        tuple(np.percentile(diff, [2.5, 97.5])))
    assert c.iqm_difference == pytest.approx(stats.trim_mean(x, 0.25) - stats.trim_mean(y, 0.25))
    assert c.p_value == pytest.approx(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    pooled = math.sqrt((24 * x.var(ddof=1) + 19 * y.var(ddof=1)) / 43)
    assert c.effect_size == pytest.approx((x.mean() - y.mean()) / pooled)


def _exact_signed_rank_p(differences):
    """Two-sided exact p of Wilcoxon's signed-rank statistic, enumerating every sign pattern."""
    ranks = stats.rankdata(np.abs(differences))
    observed = ranks[differences > 0].sum()
    total = ranks.sum()
    centre = total / 2
    sums = [sum(r for r, s in zip(ranks, signs) if s)
            for signs in itertools.product([0, 1], repeat=len(ranks))]
    extreme = sum(abs(s - centre) >= abs(observed - centre) - 1e-12 for s in sums)
    return extreme / len(sums)


def test_paired_comparison_over_seeds():
    y = RNG.normal(50, 10, 10)
    x = y + RNG.normal(2, 1.5, 10)                # the same seeds, a shared part removed
    c = seed_stats.compare(x, y, paired=True, resamples=300)
    assert c.paired and c.test == "Wilcoxon signed-rank"
    assert c.probability_of_improvement == pytest.approx(np.mean(x > y))
    assert c.p_value == pytest.approx(_exact_signed_rank_p(x - y))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 10, size=(300, 10))
    poi = [np.mean(x[i] > y[i]) for i in idx]
    assert (c.poi_low, c.poi_high) == pytest.approx(tuple(np.percentile(poi, [2.5, 97.5])))
    d = x - y
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    with pytest.raises(ValueError, match="same seeds"):
        seed_stats.compare(x, y[:5], paired=True)


def test_pairing_finds_what_pooling_misses():
    """Seeds that share their data share much of their score: paired is the sharper test."""
    shared = RNG.normal(70, 10, 30)
    x, y = shared + 1.0 + RNG.normal(0, 0.5, 30), shared + RNG.normal(0, 0.5, 30)
    assert seed_stats.compare(x, y, paired=True).p_value < 1e-4
    assert seed_stats.compare(x, y, paired=False).p_value > 0.05


def _holm_rejects(p_values, alpha):
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = set()
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_p_values_reject_what_the_step_down_procedure_rejects():
    p_values = [0.010, 0.040, 0.030, 0.0001, 0.20, 0.012]
    adjusted = seed_stats.holm(p_values)
    for alpha in (0.001, 0.01, 0.03, 0.05, 0.1, 0.5):
        assert {i for i, p in enumerate(adjusted) if p <= alpha} == _holm_rejects(p_values, alpha)
    assert seed_stats.holm([0.01, None, 0.04]) == [0.02, None, 0.04]
    assert max(seed_stats.holm([0.6, 0.7])) == 1.0 or seed_stats.holm([0.6, 0.7]) == [1.0, 1.0]


@pytest.mark.parametrize("paired", [False, True])
def test_seeds_for_power_reach_eighty_percent_by_simulation(paired):
    d = 0.6
    n = seed_stats.seeds_for_power(d, paired)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    approx = (1 if paired else 2) * z ** 2 / d ** 2
    assert approx <= n <= approx + 3                # the t-test needs a little more than z
    rng = np.random.default_rng(3)
    trials = 4000
    if paired:
        diffs = rng.normal(d, 1.0, size=(trials, n))
        p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    else:
        a = rng.normal(d, 1.0, size=(trials, n))
        b = rng.normal(0.0, 1.0, size=(trials, n))
        p = stats.ttest_ind(a, b, axis=1).pvalue
    rate = np.mean(p < 0.05)
    assert 0.78 <= rate <= 0.84, rate               # ≥ 80 % by construction, ±2 s.e. of 4000
    assert seed_stats.seeds_for_power(0.0, paired) is None
    assert seed_stats.seeds_for_power(None, paired) is None


def test_test_noise_edge_cases():
    """Below three seeds no split; a constant test score has no share; unequal lengths are an
    error; a wide test that agrees with the test split exactly puts all variance on the seeds,
    one that is independent of it (here: reversed order) none."""
    assert seed_stats.test_noise([1, 2], [1, 2], 32, 1024) is None
    with pytest.raises(ValueError, match="3 test score"):
        seed_stats.test_noise([1, 2, 3], [1, 2], 32, 1024)
    flat = seed_stats.test_noise([5, 5, 5, 5], [1, 2, 3, 4], 32, 1024)
    assert flat.seed_share is None and flat.seed_share_low is None and flat.correlation is None
    same = seed_stats.test_noise([1, 2, 3, 4, 6], [1, 2, 3, 4, 6], 32, 1024)
    assert same.seed_share == 1.0 and same.test_noise_std == 0.0 and same.shift == 0.0
    opposite = seed_stats.test_noise([1, 2, 3, 4, 6], [6, 4, 3, 2, 1], 32, 1024)
    assert opposite.seed_share == 0.0 and opposite.seed_std == 0.0
    assert opposite.test_noise_std == pytest.approx(np.std([1, 2, 3, 4, 6], ddof=1))

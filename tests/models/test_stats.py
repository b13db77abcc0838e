"""models.stats against scipy and brute-force references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from models.stats import (
    iqm,
    mean_ci,
    paired,
    paired_p,
    rl_aggregate,
    stratified_bootstrap_ci,
    t_half_width,
    unpaired_p,
)


def test_mean_ci_is_scipys_t_interval():
    x = np.array([0.81, 0.84, 0.79, 0.88, 0.83])
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    ci = mean_ci(x)
    assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-12)
    assert ci.half_width == pytest.approx(t_half_width(x), rel=1e-12)
    assert ci.std == pytest.approx(x.std(ddof=1)) and ci.n == 5
    assert mean_ci(x, level=0.99).half_width > ci.half_width
    one = mean_ci([2.0])
    assert one.mean == 2.0 and one.std == 0.0 and math.isnan(one.low)
    assert one.half_width_or_none is None and ci.half_width_or_none == ci.half_width
    assert t_half_width([2.0], undefined=0.0) == 0.0
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_and_unpaired_tests_are_scipys():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 12), rng.normal(0.0, 1, 12)
    assert paired_p(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert paired_p(a, b, "greater") == pytest.approx(
        sps.ttest_rel(a, b, alternative="greater").pvalue)
    assert unpaired_p(a, b[:7]) == pytest.approx(sps.ttest_ind(a, b[:7], equal_var=False).pvalue)
    assert paired_p(a[:1], b[:1]) is None                  # one pair: no test
    assert paired_p(a, a + 0.5) is None                    # the same difference every time
    assert paired_p(a, a) is None
    with pytest.raises(ValueError):
        paired_p(a, b[:5])
    with pytest.raises(ValueError):
        paired_p(a, b, "bigger")


def test_paired_comparison_row():
    a, b = [0.9, 0.8, 0.85, 0.95], [0.8, 0.82, 0.80, 0.90]
    r = paired(a, b)
    d = np.subtract(a, b)
    assert r.n == 4 and r.wins == 3 and r.diff_mean == pytest.approx(d.mean())
    assert r.diff_half_width == pytest.approx(t_half_width(d))
    assert r.t == pytest.approx(sps.ttest_rel(a, b).statistic)
    assert r.p_greater == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue)
    empty = paired([], [])
    assert empty.n == 0 and empty.diff_mean is None and empty.p_two_sided is None


@pytest.mark.parametrize("n", [4, 5, 7, 8, 13])
def test_iqm_is_the_mean_of_the_middle_half(n):
    x = np.random.default_rng(n).normal(size=n)
    k = int(0.25 * n)
    assert iqm(x) == pytest.approx(np.sort(x)[k:n - k].mean())
    assert iqm(x.reshape(1, -1)) == pytest.approx(iqm(x))   # over every score of a matrix


def test_stratified_bootstrap_matches_the_exact_bootstrap_distribution():
    """3 runs × 2 tasks: all 27² equally likely stratified resamples, enumerated."""
    m = np.array([[0.1, 1.0], [0.5, 2.5], [0.9, 1.7]])
    picks = list(itertools.product(range(3), repeat=3))     # one task's resampled runs
    exact = np.array([np.mean([m[i, 0] for i in p0] + [m[i, 1] for i in p1])
                      for p0 in picks for p1 in picks])
    lo, hi = stratified_bootstrap_ci(m, lambda s: float(s.mean()), reps=20_000, seed=3)
    assert lo == pytest.approx(np.percentile(exact, 2.5), abs=0.03)
    assert hi == pytest.approx(np.percentile(exact, 97.5), abs=0.03)
    # runs are resampled within each task: a task whose runs agree adds no spread
    flat = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    assert stratified_bootstrap_ci(flat[:, :1], lambda s: float(s.mean())) == (1.0, 1.0)
    assert stratified_bootstrap_ci(m, seed=1) == stratified_bootstrap_ci(m, seed=1)


def test_batched_iqm_and_mean_intervals_equal_the_per_sample_loop():
    from models.stats import mean_of

    m = np.random.default_rng(4).normal(size=(3, 15))
    for fast in (iqm, mean_of):
        loop = stratified_bootstrap_ci(m, lambda s, f=fast: f(s), reps=300, seed=7)
        assert stratified_bootstrap_ci(m, fast, reps=300, seed=7) == pytest.approx(loop,
                                                                                    rel=1e-12)


def test_rl_aggregate_reports_iqm_with_its_interval():
    scores = np.random.default_rng(2).normal(size=(5, 10))
    agg = rl_aggregate(scores, reps=500)
    assert agg["iqm"] == pytest.approx(iqm(scores))
    assert agg["iqm_ci95"][0] <= agg["iqm"] <= agg["iqm_ci95"][1]
    assert agg["mean_ci95"][0] <= agg["mean"] <= agg["mean_ci95"][1]
    assert (agg["n_runs"], agg["n_tasks"]) == (5, 10)
    assert rl_aggregate(scores[0], reps=50)["n_tasks"] == 1   # a vector: runs of one task
    with pytest.raises(ValueError):
        rl_aggregate(np.zeros((2, 2, 2)))

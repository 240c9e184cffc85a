"""Statistics: mean/SD, separation in SD, the Student-t CDF, Welch's and the paired t-test, Holm's
correction, bootstrap CIs."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neatpipe.analysis.stats import (
    PairedBootstrap,
    bootstrap_pass_at_1,
    holm_adjust,
    mean,
    paired_t_test,
    regularized_incomplete_beta,
    sample_sd,
    separation,
    student_t_cdf,
    summarize,
    welch_t_test,
)

SOLO = [81, 77, 79, 74, 72]  # llama3.2:3b solo, main_results.json
SELF_REFINE = [98, 92, 95, 91, 94]  # llama→exec→llama


def test_mean_and_sample_sd():
    assert mean([1, 2, 3, 4]) == 2.5
    assert sample_sd([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.13808993529939)
    assert sample_sd([5]) == 0.0
    s = summarize(SOLO)
    assert (s.n, s.mean) == (5, 76.6)
    assert s.sd == pytest.approx(3.646916505762094)  # the study's stored stdev
    assert s.format() == "76.6 ± 3.6"
    with pytest.raises(ValueError):
        mean([])


def test_separation_both_formulas():
    # The study's Table 2, HumanEval, self-refine vs solo (llama): printed as 4.7 sigma.
    consistent = separation(SELF_REFINE, SOLO)
    single = separation(SELF_REFINE, SOLO, sd="b")
    assert consistent == pytest.approx(17.4 / math.hypot(3.646916505762094, 2.7386127875258306))
    assert round(consistent, 1) == 3.8
    assert single == pytest.approx(17.4 / 3.646916505762094)  # 4.771: the paper truncates to 4.7
    assert math.floor(single * 10) / 10 == 4.7
    assert separation(SELF_REFINE, SOLO, sd="a") == pytest.approx(17.4 / 2.7386127875258306)
    assert separation([1, 1], [1, 1]) != separation([1, 1], [1, 1])  # nan
    assert separation([2, 2], [1, 1]) == math.inf
    with pytest.raises(ValueError):
        separation(SOLO, SOLO, sd="pooled")


def test_incomplete_beta_closed_forms():
    for x in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        assert regularized_incomplete_beta(x, 1, 1) == pytest.approx(x)
        assert regularized_incomplete_beta(x, 3, 1) == pytest.approx(x**3)
        assert regularized_incomplete_beta(x, 1, 2) == pytest.approx(1 - (1 - x) ** 2)
        assert regularized_incomplete_beta(x, 2.5, 0.5) == pytest.approx(
            1 - regularized_incomplete_beta(1 - x, 0.5, 2.5)
        )


def test_student_t_cdf_exact_cases_and_tables():
    for t in (-5.0, -1.0, -0.3, 0.0, 0.7, 2.0, 10.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
        assert student_t_cdf(t, math.inf) == pytest.approx(0.5 * math.erfc(-t / math.sqrt(2)))
    # Printed critical values of the t distribution.
    assert student_t_cdf(2.5706, 5) == pytest.approx(0.975, abs=2e-5)
    assert student_t_cdf(2.2281, 10) == pytest.approx(0.975, abs=2e-5)
    assert student_t_cdf(3.1693, 10) == pytest.approx(0.995, abs=2e-5)
    assert student_t_cdf(1.9600, 1e7) == pytest.approx(0.975, abs=2e-5)


def _t_two_sided_p_by_quadrature(t: float, df: float, n: int = 20000) -> float:
    """Independent check: integrate the Student-t density from 0 to |t| with Simpson's rule."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    h = abs(t) / n
    s = f(0) + f(abs(t)) + sum((4 if k % 2 else 2) * f(k * h) for k in range(1, n))
    return 1 - 2 * (s * h / 3)


def test_welch_hand_computed():
    a, b = [1, 2, 3, 4], [2, 4, 6, 8, 10]
    # By hand: means 2.5 and 6; variances 5/3 and 10; se^2 = 5/12 + 2 = 29/12;
    # t = -3.5 / sqrt(29/12); df = (29/12)^2 / ((5/12)^2/3 + 2^2/4).
    r = welch_t_test(a, b)
    assert r.t == pytest.approx(-3.5 / math.sqrt(29 / 12))
    assert r.t == pytest.approx(-2.25143, abs=1e-5)
    assert r.df == pytest.approx((29 / 12) ** 2 / ((5 / 12) ** 2 / 3 + 1))
    assert r.df == pytest.approx(5.52079, abs=1e-5)
    assert r.p == pytest.approx(_t_two_sided_p_by_quadrature(r.t, r.df), abs=1e-7)
    assert 0.06 < r.p < 0.075
    # Symmetry and degenerate cases.
    assert welch_t_test(b, a).p == pytest.approx(r.p)
    assert welch_t_test([3, 3], [3, 3]).p == 1.0
    assert welch_t_test([4, 4], [3, 3]).p == 0.0
    with pytest.raises(ValueError):
        welch_t_test([1], [1, 2])


def test_welch_against_scipy_if_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.ttest_ind(SELF_REFINE, SOLO, equal_var=False)
    r = welch_t_test(SELF_REFINE, SOLO)
    assert r.t == pytest.approx(ref.statistic)
    assert r.p == pytest.approx(ref.pvalue)


def test_welch_study_self_refine_vs_solo():
    r = welch_t_test(SELF_REFINE, SOLO)
    assert r.t == pytest.approx(8.531, abs=1e-3)
    assert r.df == pytest.approx(7.423, abs=1e-3)
    assert r.p == pytest.approx(_t_two_sided_p_by_quadrature(r.t, r.df), abs=1e-8)


def test_bootstrap_deterministic_and_ordered():
    rng = random.Random(1)
    one = [rng.random() < 0.6 for _ in range(164)]
    a = bootstrap_pass_at_1(one, n_boot=500, seed=3)
    assert a == bootstrap_pass_at_1(one, n_boot=500, seed=3)
    assert a != bootstrap_pass_at_1(one, n_boot=500, seed=4)
    assert a.estimate == sum(one) / 164
    assert a.low <= a.estimate <= a.high
    assert (a.n_problems, a.n_runs, a.n_boot) == (164, 1, 500)
    # Normal-approximation width for p ~ 0.6, n = 164: 2 * 1.96 * sqrt(p(1-p)/n) ~ 0.15.
    assert 0.10 < a.high - a.low < 0.20
    assert "% CI" in a.format()


def test_bootstrap_over_runs():
    rng = random.Random(2)
    runs = [[rng.random() < 0.5 for _ in range(80)] for _ in range(5)]
    ci = bootstrap_pass_at_1(runs, n_boot=400, seed=0)
    assert ci.n_runs == 5
    assert ci.estimate == pytest.approx(sum(map(sum, runs)) / 400)
    assert ci.low < ci.estimate < ci.high
    # Identical runs: the run level adds nothing, so the estimate is the single run's.
    same = bootstrap_pass_at_1([runs[0]] * 3, n_boot=400, seed=0)
    assert same.estimate == sum(runs[0]) / 80
    with pytest.raises(ValueError):
        bootstrap_pass_at_1([[True, False], [True]])
    with pytest.raises(ValueError):
        bootstrap_pass_at_1([])


def test_bootstrap_coverage_sanity():
    """About 95% of 95% intervals cover the true rate (100 simulated benchmarks of 60 problems)."""
    rng = random.Random(7)
    p, covered = 0.65, 0
    for k in range(100):
        data = [rng.random() < p for _ in range(60)]
        ci = bootstrap_pass_at_1(data, n_boot=200, seed=k)
        covered += ci.low <= p <= ci.high
    assert 85 <= covered <= 100


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 200), min_size=2, max_size=8),
    st.lists(st.integers(0, 200), min_size=2, max_size=8),
)
def test_properties_separation_and_welch(a, b):
    s_ab, s_ba = separation(a, b), separation(b, a)
    if not math.isnan(s_ab):
        assert s_ab == pytest.approx(-s_ba)
    r = welch_t_test(a, b)
    assert 0.0 <= r.p <= 1.0
    if sample_sd(a) or sample_sd(b):
        assert min(len(a), len(b)) - 1 - 1e-9 <= r.df <= len(a) + len(b) - 2 + 1e-9


@settings(max_examples=50, deadline=None)
@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.5, 100))
def test_property_t_cdf_monotone(t1, t2, df):
    lo, hi = sorted((t1, t2))
    assert 0.0 <= student_t_cdf(lo, df) <= student_t_cdf(hi, df) + 1e-12 <= 1.0 + 1e-12
    assert student_t_cdf(lo, df) + student_t_cdf(-lo, df) == pytest.approx(1.0)


def test_paired_t_hand_computed():
    # d = [1, 0, 0, 1, 0, 1]: mean 0.5, sd sqrt(0.3), t = 0.5 / (sqrt(0.3) / sqrt(6)) = sqrt(5)
    r = paired_t_test([1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0])
    assert r.t == pytest.approx(math.sqrt(5)) and r.df == 5 and r.n == 6 and r.diff == 0.5
    assert r.p == pytest.approx(0.07558681842161241, rel=1e-9)  # scipy.stats.ttest_rel
    r = paired_t_test([0.9, 0.5, 1.0, 0.0, 0.7, 0.3, 0.8], [0.6, 0.5, 0.9, 0.1, 0.2, 0.3, 0.4])
    assert r.t == pytest.approx(1.9817347772274494) and r.p == pytest.approx(0.09479572647405625, rel=1e-9)
    # the order of the pairs does not matter; swapping the sides flips t and keeps p
    swapped = paired_t_test([0.6, 0.5, 0.9, 0.1, 0.2, 0.3, 0.4], [0.9, 0.5, 1.0, 0.0, 0.7, 0.3, 0.8])
    assert swapped.t == pytest.approx(-r.t) and swapped.p == pytest.approx(r.p)


def test_paired_t_degenerate_and_invalid():
    assert paired_t_test([1, 0, 1], [1, 0, 1]).p == 1.0
    shifted = paired_t_test([1, 1, 1], [0, 0, 0])
    assert shifted.p == 0.0 and shifted.t == math.inf
    with pytest.raises(ValueError, match="same length"):
        paired_t_test([1, 0], [1])
    with pytest.raises(ValueError, match="two pairs"):
        paired_t_test([1], [0])


def test_paired_differs_from_welch_where_problems_vary():
    # two pipelines that differ on one problem in twenty, on problems of very different difficulty:
    # the unpaired test sees the difficulty as noise, the paired test sees one consistent difference
    a = [1.0] * 10 + [0.0] * 9 + [1.0]
    b = [1.0] * 10 + [0.0] * 10
    assert paired_t_test(a, b).p == pytest.approx(0.33, abs=0.01)  # one win of 20: not distinguishable
    assert welch_t_test(a, b).p > 0.7


def test_holm_hand_computed():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([0.02]) == [0.02]  # one test: nothing to correct
    assert holm_adjust([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_property_holm_never_below_p_and_keeps_the_order(ps):
    adjusted = holm_adjust(ps)
    assert all(q >= p - 1e-12 and q <= 1.0 for p, q in zip(ps, adjusted, strict=True))
    for i, j in itertools.combinations(range(len(ps)), 2):
        if ps[i] <= ps[j]:
            assert adjusted[i] <= adjusted[j] + 1e-12
    assert min(adjusted) == pytest.approx(min(1.0, len(ps) * min(ps)))


def test_paired_bootstrap_of_a_difference():
    rng = random.Random(3)
    a = [float(rng.random() < 0.7) for _ in range(80)]
    b = [x if rng.random() < 0.8 else 1.0 - x for x in a]
    boot = PairedBootstrap(80, n_boot=1000, seed=5)
    ra, rb = boot.replicate_means(a), boot.replicate_means(b)
    low, high = boot.interval([x - y for x, y in zip(ra, rb, strict=True)])
    diff = mean(a) - mean(b)
    assert low < diff < high and high - low < 0.3
    # the shared resamples make a sample's difference with itself exactly zero in every replicate
    assert boot.interval([x - y for x, y in zip(ra, boot.replicate_means(a), strict=True)]) == (0.0, 0.0)
    again = PairedBootstrap(80, n_boot=1000, seed=5)
    assert again.replicate_means(a) == ra  # deterministic for a seed
    assert PairedBootstrap(80, n_boot=1000, seed=6).replicate_means(a) != ra
    with pytest.raises(ValueError, match="expected 80 values"):
        boot.replicate_means(a[:-1])

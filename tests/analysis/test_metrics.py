"""Metrics against independent computations (SciPy, plain loops)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from valuesim.analysis import metrics
from valuesim.errors import DataError


def test_wasserstein_equals_scipy():
    rng = np.random.default_rng(0)
    r = np.array([0.0, 1, 2, 3, 5, 8])
    p = rng.dirichlet(np.ones(6), size=40)
    h = rng.dirichlet(np.ones(6), size=40)
    ours = metrics.wasserstein(p, h, r)
    ref = [stats.wasserstein_distance(r, r, u_weights=a, v_weights=b) / 8 for a, b in zip(p, h, strict=True)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_mean_error_and_normalized_variance_by_hand():
    r = [1, 2, 3, 4]
    p = np.array([0.5, 0.0, 0.0, 0.5])  # the largest possible variance
    h = np.array([0.0, 1.0, 0.0, 0.0])
    assert metrics.normalized_variance(p, r) == pytest.approx(1.0)
    assert metrics.normalized_variance(h, r) == pytest.approx(0.0)
    assert metrics.abs_error(p, h, r) == pytest.approx(abs(2.5 - 2) / 3)
    assert metrics.wasserstein(p, h, r) == pytest.approx((0.5 * 1 + 0.5 * 2) / 3)


def test_bad_values_raise():
    with pytest.raises(DataError, match="strictly increasing"):
        metrics.wasserstein([0.5, 0.5], [0.5, 0.5], [2, 1])


def test_human_arrays_aligns_codes_and_rejects_unknown_codes():
    human = pl.DataFrame({"country": ["A", "A", "B"], "question": ["q", "q", "q"],
                          "code": [1, 3, 2], "share": [0.25, 0.75, 1.0]})
    keys = pl.DataFrame({"country": ["B", "A", "B"], "question": ["q", "q", "q"]})
    out = metrics.human_arrays(human, keys, [1, 2, 3])
    np.testing.assert_allclose(out, [[0, 1, 0], [0.25, 0, 0.75], [0, 1, 0]])
    with pytest.raises(DataError, match="not an answer option"):
        metrics.human_arrays(human, keys, [1, 2])
    with pytest.raises(DataError, match="no human answers"):
        metrics.human_arrays(human, pl.DataFrame({"country": ["C"], "question": ["q"]}), [1, 2, 3])


def test_wilcoxon_matches_scipy_and_names_the_better_method():
    rng = np.random.default_rng(1)
    qs = [f"q{i}" for i in range(12)]
    a = rng.uniform(0, 0.1, 12)
    b = a + rng.uniform(0.01, 0.05, 12)
    errors = pl.DataFrame({
        "model": "m", "country": "X", "question": qs * 2, "method": ["a"] * 12 + ["b"] * 12,
        "value": np.concatenate([a, b]),
    })
    out = metrics.wilcoxon_methods(errors)
    assert out.height == 1
    assert out["p_value"][0] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert out["better"][0] == "a"


def test_mann_whitney_bh_matches_statsmodels_by_hand():
    rng = np.random.default_rng(2)
    groups = {"x": rng.normal(0, 1, 30), "y": rng.normal(1, 1, 30), "z": rng.normal(0, 1, 30)}
    out = metrics.mann_whitney_bh(groups)
    raw = [stats.mannwhitneyu(groups[a], groups[b]).pvalue for a, b in [("x", "y"), ("x", "z"), ("y", "z")]]
    order = np.argsort(raw)
    m = len(raw)
    bh = np.minimum.accumulate((np.array(raw)[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(bh, 1)
    np.testing.assert_allclose(out["p_adjusted"].to_numpy(), expected)
    assert out.filter((pl.col("a") == "x") & (pl.col("b") == "y"))["significant"][0]


def test_bootstrap_ci_contains_mean_and_degenerate_cases():
    x = np.random.default_rng(3).normal(5, 1, 200)
    lo, hi = metrics.bootstrap_ci(x, 500, 0)
    assert lo < x.mean() < hi
    assert metrics.bootstrap_ci([2.0], 100, 0) == (2.0, 2.0)

"""The paired test clustered by question (valuesim.analysis.paired): small cases checked
by hand, and a simulation on cells built like the demo run's (32 questions x 10
countries, per-cell error SD ~0.17 of the range, paired differences with intraclass
correlation ~0.40 within questions) showing why it is the default: it keeps false
positives near the nominal 5% where a cell-paired Wilcoxon does not, and it finds a
planted difference of 0.01 of the range that the paper's unpaired Mann-Whitney misses."""

from __future__ import annotations

from itertools import product

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from valuesim.analysis import paired


def _frame(values: dict[tuple[str, str], float], method: str = "m", model: str = "x") -> pl.DataFrame:
    return pl.DataFrame(
        [{"model": model, "method": method, "question": q, "country": c, "mae": v} for (q, c), v in values.items()],
        schema={"model": pl.Utf8, "method": pl.Utf8, "question": pl.Utf8, "country": pl.Utf8, "mae": pl.Float64},
    )


# ---------------------------------------------------------------------------
# hand-checked cases


def test_differences_pair_cells_average_over_countries_and_count_the_unmatched() -> None:
    a = _frame({("q1", "JPN"): 0.3, ("q1", "COL"): 0.5, ("q2", "JPN"): 0.2, ("q2", "COL"): 0.4,
                ("q2", "ZWE"): 0.9})  # ZWE q2: only a scores it
    b = _frame({("q1", "JPN"): 0.1, ("q1", "COL"): 0.2, ("q2", "JPN"): 0.1, ("q2", "COL"): 0.1,
                ("q3", "JPN"): 0.5})  # q3: only b scores it
    q = paired.question_differences(a, b)
    assert q.questions == ["q1", "q2"]
    # q1: (0.2 + 0.3) / 2; q2: (0.1 + 0.3) / 2; ZWE's 0.9 is not in q2's mean
    np.testing.assert_allclose(q.diffs, [0.25, 0.20], rtol=1e-12)
    assert (q.n_cells, q.n_unmatched) == (4, 2)
    assert q.mean_a == pytest.approx((0.4 + 0.3) / 2)
    assert q.mean_b == pytest.approx((0.15 + 0.1) / 2)
    res = paired.paired_test(a, b)
    assert res.diff == pytest.approx(0.225)
    assert res.diff == pytest.approx(res.mean_a - res.mean_b)
    assert (res.n_questions, res.n_cells, res.n_unmatched) == (2, 4, 2)


def test_a_cell_scored_twice_on_one_side_counts_with_its_mean() -> None:
    # a box pooling two experiments that both score (q1, JPN): 0.3 and 0.5 -> 0.4
    a = pl.concat([_frame({("q1", "JPN"): 0.3}), _frame({("q1", "JPN"): 0.5, ("q1", "COL"): 0.2})])
    b = _frame({("q1", "JPN"): 0.1, ("q1", "COL"): 0.1})
    q = paired.question_differences(a, b)
    np.testing.assert_allclose(q.diffs, [((0.4 - 0.1) + (0.2 - 0.1)) / 2], rtol=1e-12)
    assert (q.n_cells, q.n_unmatched) == (2, 0)


@pytest.mark.parametrize(("diffs", "p"), [
    # all 16 sign patterns of 1, 2, 3, 4: the observed sum 10 is the largest of 16: 2 x 1/16
    ([1.0, 2.0, 3.0, 4.0], 2 / 16),
    # sums >= 6 of +-1 +-2 +-3 +-4: 10, 8 (-1), 6 (-2): 3 of 16, two-sided 6/16
    ([1.0, -2.0, 3.0, 4.0], 6 / 16),
    ([0.0, 0.0, 0.0], 1.0),
])
def test_the_sign_flip_test_is_exact_for_few_questions(diffs: list[float], p: float) -> None:
    assert paired.sign_flip_p(diffs) == pytest.approx(p, rel=1e-12)


def test_no_question_in_common_gives_no_p_value() -> None:
    assert np.isnan(paired.sign_flip_p([]))
    res = paired.paired_test(_frame({("q1", "JPN"): 0.3}), _frame({("q2", "JPN"): 0.1}))
    assert (res.n_questions, res.n_cells, res.n_unmatched) == (0, 0, 2)
    assert np.isnan(res.p)
    assert np.isnan(res.diff)


def test_many_questions_draw_sign_patterns_close_to_the_exact_p() -> None:
    # 2^18 = 262,144 patterns > 99,999 resamples: Monte Carlo; the exact p enumerated here
    d = np.random.default_rng(3).normal(0.3, 1.0, 18)
    signs = np.array(list(product((-1.0, 1.0), repeat=d.size)))
    null = signs @ d
    obs = d.sum()
    exact = min(1.0, 2 * min(np.mean(null >= obs - 1e-12), np.mean(null <= obs + 1e-12)))
    p = paired.sign_flip_p(d, seed=0)
    assert p == paired.sign_flip_p(d, seed=0)  # a fixed seed: the same p every run
    assert 0.01 < exact < 0.99  # a p-value the draws have to estimate, not a trivial one
    assert p == pytest.approx(exact, abs=0.006)  # ~4 Monte Carlo SDs at 99,999 draws


def test_the_interval_resamples_questions_not_cells() -> None:
    rng = np.random.default_rng(5)
    per_q = rng.normal(0.02, 0.03, 12)
    one = {(f"q{i:02d}", "JPN"): float(v) for i, v in enumerate(per_q)}
    zero = {k: 0.0 for k in one}
    # ten countries repeating each question's difference: ten times the cells, the same questions
    ten = {(f"q{i:02d}", c): float(v) for i, v in enumerate(per_q) for c in "ABCDEFGHIJ"}
    zero10 = {k: 0.0 for k in ten}
    r1 = paired.paired_test(_frame(one), _frame(zero), n_resamples=999, seed=2)
    r10 = paired.paired_test(_frame(ten), _frame(zero10), n_resamples=999, seed=2)
    assert (r10.ci_lo, r10.ci_hi, r10.p) == pytest.approx((r1.ci_lo, r1.ci_hi, r1.p), rel=1e-12)
    assert r10.n_cells == 120
    assert r10.n_questions == 12
    # a bootstrap of the 120 cells would be ~sqrt(10) narrower
    cells = stats.bootstrap((np.repeat(per_q, 10),), np.mean, n_resamples=999, method="percentile",
                            rng=np.random.default_rng(2)).confidence_interval
    assert r10.ci_hi - r10.ci_lo > 2 * (cells.high - cells.low)
    # and it is SciPy's percentile bootstrap of the 12 per-question means
    ref = stats.bootstrap((per_q,), np.mean, n_resamples=999, method="percentile", rng=np.random.default_rng(2))
    assert (r1.ci_lo, r1.ci_hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high),
                                                 rel=1e-12)


def test_bh_matches_statsmodels_and_keeps_nan_out_of_the_family() -> None:
    p = np.array([0.001, 0.04, 0.03, 0.5, 0.02])
    expected = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(paired.bh(p), expected, rtol=1e-12)
    with_nan = paired.bh(np.insert(p, 2, np.nan))
    assert np.isnan(with_nan[2])
    np.testing.assert_allclose(np.delete(with_nan, 2), expected, rtol=1e-12)


def test_the_evaluate_table_has_every_pair_and_reference_with_bh_per_model() -> None:
    rng = np.random.default_rng(1)
    keys = [(f"q{i}", c) for i in range(8) for c in ("JPN", "COL", "ZWE")]
    base = {k: float(rng.uniform(0.1, 0.4)) for k in keys}
    cells = pl.concat([
        _frame({k: v for k, v in base.items()}, "generic", "x"),
        _frame({k: v + 0.05 for k, v in base.items()}, "value", "x"),  # worse in every cell
        _frame({k: v for k, v in base.items()}, "generic", "y"),
        _frame({k: v - 0.05 for k, v in base.items()}, "value", "y"),  # better in every cell
    ])
    refs = _frame({k: 0.2 for k in keys}, "midpoint", "reference")
    table = paired.paired_table(cells, refs, n_resamples=200, seed=0)
    assert table.columns == list(paired.TABLE_SCHEMA)
    x = table.filter(pl.col("model") == "x")
    assert x.select("a", "b", "vs_reference").rows() == [
        ("generic", "value", False), ("generic", "midpoint", True), ("value", "midpoint", True)]
    pair = x.row(0, named=True)
    # 8 questions, every one of the same sign: exact p = 2 / 2^8
    assert pair["diff"] == pytest.approx(-0.05)
    assert pair["p"] == pytest.approx(2 / 256)
    assert pair["better"] == "generic"
    assert pair["n_questions"] == 8
    assert pair["n_cells"] == 24
    assert table.filter(pl.col("model") == "y").row(0, named=True)["better"] == "value"
    for _, grp in table.group_by("model"):
        np.testing.assert_allclose(grp["p_bh"].to_numpy(), multipletests(grp["p"].to_numpy(), method="fdr_bh")[1])
    assert set(table["ci_resamples"].to_list()) == {"questions"}


# ---------------------------------------------------------------------------
# simulation on the demo run's structure

Q, C = 32, 10
# generic vs country prompting on the demo run: SD of the question effect and of the
# cell residual of the paired differences (ICC 0.40); per-cell error mean 0.26, SD 0.17
SD_QUESTION, SD_CELL = 0.0102, 0.0124
ALPHA = 0.05


def _simulated(rng: np.random.Generator, delta: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two methods' cell errors: a shared per-cell error plus a paired difference
    ``delta`` + question effect + cell noise, split half to each side."""
    base = rng.beta(1.47, 4.19, (Q, C))  # mean 0.26, SD 0.17
    d = delta + rng.normal(0.0, SD_QUESTION, (Q, 1)) + rng.normal(0.0, SD_CELL, (Q, C))
    keys = [(f"q{i:02d}", f"c{j}") for i in range(Q) for j in range(C)]
    a = dict(zip(keys, (base + d / 2).ravel().tolist(), strict=True))
    b = dict(zip(keys, (base - d / 2).ravel().tolist(), strict=True))
    return _frame(a, "a"), _frame(b, "b")


def _clustered(a: pl.DataFrame, b: pl.DataFrame) -> float:
    return paired.paired_test(a, b, n_resamples=50, permutations=999).p


def _cell_wilcoxon(a: pl.DataFrame, b: pl.DataFrame) -> float:
    return float(stats.wilcoxon(a["mae"].to_numpy(), b["mae"].to_numpy()).pvalue)


def _mann_whitney(a: pl.DataFrame, b: pl.DataFrame) -> float:
    return float(stats.mannwhitneyu(a["mae"].to_numpy(), b["mae"].to_numpy(), alternative="two-sided").pvalue)


def _rejections(test, delta: float, repeats: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([test(*_simulated(rng, delta)) < ALPHA for _ in range(repeats)]))


def test_the_simulated_differences_cluster_within_questions_like_the_demos() -> None:
    a, b = _simulated(np.random.default_rng(0), 0.0)
    d = (a["mae"].to_numpy() - b["mae"].to_numpy()).reshape(Q, C)
    within = d.var(axis=1, ddof=1).mean()
    between = (C * d.mean(axis=1).var(ddof=1) - within) / C
    assert 0.25 < between / (between + within) < 0.55  # one-way ANOVA ICC; the demo's is 0.40


def test_the_clustered_test_keeps_false_positives_near_nominal_where_cell_wilcoxon_does_not() -> None:
    repeats = 400  # binomial SD of a 5% rate: 0.011
    clustered = _rejections(_clustered, 0.0, repeats, seed=11)
    wilcoxon = _rejections(_cell_wilcoxon, 0.0, repeats, seed=11)
    assert 0.02 <= clustered <= 0.085
    # the ten countries of a question count as ten independent pairs: ~0.35 on this structure
    assert wilcoxon > 0.2


def test_the_clustered_test_detects_a_planted_hundredth_that_mann_whitney_misses() -> None:
    repeats = 100
    clustered = _rejections(_clustered, 0.01, repeats, seed=12)
    mann_whitney = _rejections(_mann_whitney, 0.01, repeats, seed=12)
    assert clustered >= 0.9  # ~1.0: the per-question means' SE is ~0.002
    # unpaired, the 0.01 shift hides in the cells' spread (SD 0.17): power ~0.1; so
    # replacing the clustered test by Mann-Whitney fails the line above
    assert mann_whitney <= 0.3

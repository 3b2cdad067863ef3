"""valuesim.analysis.conformal: quantile ranks, the variants' thresholds, held-out fits
that never see their own question, and the clipped intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from valuesim.analysis import conformal
from valuesim.analysis.conformal import (
    conformal_quantile,
    conformal_rank,
    fit_thresholds,
    heldout_thresholds,
)
from valuesim.errors import DataError


def test_the_rank_is_the_30th_of_32_at_09() -> None:
    assert int(conformal_rank(32, 0.9)) == 30  # ceil(33 * 0.9) = ceil(29.7)
    assert int(conformal_rank(31, 0.9)) == 29  # ceil(28.8): LOQO on a 32-question study
    assert int(conformal_rank(9, 0.9)) == 9  # 10 * 0.9 is exactly 9: no extra rank
    assert int(conformal_rank(19, 0.95)) == 19
    assert int(conformal_rank(4, 0.8)) == 4
    scores = np.random.default_rng(1).permutation(np.arange(1.0, 33.0))
    assert conformal_quantile(scores, 0.9) == 30.0
    assert conformal_quantile(scores, 0.8) == 27.0  # ceil(26.4)
    assert conformal_quantile(scores, 0.95) == 32.0  # ceil(31.35)


def test_too_few_scores_give_the_whole_scale() -> None:
    # 8 scores at 0.9: rank ceil(8.1) = 9 > 8, no finite threshold is valid
    assert conformal_quantile(np.arange(8.0), 0.9) == np.inf
    assert conformal_quantile(np.arange(9.0), 0.9) == 8.0  # rank 9 of 9: the largest
    assert conformal_quantile(np.arange(18.0), 0.95) == np.inf
    assert conformal_quantile(np.array([]), 0.9) == np.inf
    with pytest.raises(DataError, match="between 0 and 1"):
        conformal_rank(10, 90)


def test_absent_cells_are_left_out_of_the_count() -> None:
    row = np.array([[5.0, np.nan, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0, np.nan]])
    # 9 present scores: rank 9 at 0.9 is the largest present, not an absent one
    assert conformal_quantile(row, 0.9)[0] == 9.0
    assert conformal_quantile(row, 0.8)[0] == 8.0  # ceil(10 * 0.8) = 8


def _scores(seed: int = 0, countries: int = 3, questions: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.3, size=(countries, questions))


def test_variants_pick_their_order_statistic() -> None:
    s = _scores()
    want_country = [np.sort(r)[int(conformal_rank(12, 0.9)) - 1] for r in s]
    np.testing.assert_array_equal(fit_thresholds(s, "per_country", 0.9), want_country)
    pooled = np.sort(s.ravel())[int(conformal_rank(36, 0.9)) - 1]
    np.testing.assert_array_equal(fit_thresholds(s, "pooled", 0.9), [pooled] * 3)
    joint = np.sort(s.max(axis=0))[int(conformal_rank(12, 0.9)) - 1]
    np.testing.assert_array_equal(fit_thresholds(s, "joint", 0.9), [joint] * 3)
    d = np.random.default_rng(2).uniform(0.05, 0.2, size=s.shape)
    want_norm = [np.sort(r)[int(conformal_rank(12, 0.9)) - 1] for r in s / d]
    np.testing.assert_allclose(fit_thresholds(s, "normalized", 0.9, d), want_norm)
    with pytest.raises(DataError, match="difficulty"):
        fit_thresholds(s, "normalized", 0.9)
    with pytest.raises(DataError, match="unknown interval variant"):
        fit_thresholds(s, "banana", 0.9)  # type: ignore[arg-type]


def test_joint_ignores_absent_cells_of_a_question() -> None:
    s = np.array([[0.1, 0.2, np.nan], [0.3, np.nan, np.nan]])
    # question 3 has no cell at all: it is not a question of the joint fit
    np.testing.assert_array_equal(conformal._column_max(s), [0.3, 0.2, np.nan])
    assert fit_thresholds(s, "joint", 0.5)[0] == 0.3  # rank ceil(3 * 0.5) = 2 of {0.2, 0.3}


@pytest.mark.parametrize("variant", conformal.VARIANTS)
def test_held_out_thresholds_equal_fits_on_the_other_questions(variant: conformal.Variant) -> None:
    """Brute force: every question's threshold is a fit on a copy with its column deleted."""
    s = _scores(3, countries=4, questions=14)
    s[1, 5] = np.nan  # a question one country did not keep
    d = np.random.default_rng(4).uniform(0.02, 0.2, size=s.shape)
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "e", "f", "g", "h", "h", "i"]
    for labels in (list(range(14)), groups):
        got = heldout_thresholds(s, variant, 0.8, labels, d)
        for g in set(labels):
            keep = np.array([x != g for x in labels])
            want = fit_thresholds(s[:, keep], variant, 0.8, d[:, keep])
            for q in np.flatnonzero(~keep):
                np.testing.assert_array_equal(got[:, q], want)


def test_loqo_never_sees_the_held_out_question() -> None:
    """A planted question whose residual is huge: with its own score in the fit (10
    questions at 0.9, rank 10 = the largest) its interval would cover it; held out, it
    misses. Only its own country's thresholds of the per-country variant move."""
    rng = np.random.default_rng(7)
    s = rng.uniform(0.0, 0.2, size=(3, 10))
    planted = s.copy()
    planted[0, 4] = 0.95
    leaked = fit_thresholds(planted, "per_country", 0.9)
    assert leaked[0] == 0.95
    assert conformal.covered(0.95, leaked[0])
    t = heldout_thresholds(planted, "per_country", 0.9, list(range(10)))
    assert t[0, 4] == s[0, np.arange(10) != 4].max() < 0.2  # fitted without it
    assert not conformal.covered(planted, t)[0, 4]
    # other countries never see country 0's scores
    np.testing.assert_array_equal(t[1:], heldout_thresholds(s, "per_country", 0.9, list(range(10)))[1:])
    # in country 0 the other questions' fits now contain the planted score (rank 9 of 9)
    assert np.all(t[0, np.arange(10) != 4] == 0.95)
    # the shared variants see it from every country, except when it is held out
    joint = heldout_thresholds(planted, "joint", 0.9, list(range(10)))
    assert joint[0, 4] < 0.2
    assert np.all(joint[:, np.arange(10) != 4] == 0.95)


def test_held_out_thresholds_vectorise_over_replicates() -> None:
    s = np.random.default_rng(5).uniform(size=(6, 3, 11))
    batch = heldout_thresholds(s, "per_country", 0.9, list(range(11)))
    for r, q in itertools.product(range(6), range(11)):
        np.testing.assert_array_equal(batch[r, :, q], heldout_thresholds(s[r], "per_country", 0.9,
                                                                         list(range(11)))[:, q])
    with pytest.raises(DataError, match="group labels"):
        heldout_thresholds(s, "per_country", 0.9, [1, 2])


def test_intervals_are_clipped_to_the_scale() -> None:
    low, high = conformal.interval([2.0, 9.5, 5.0], [0.1, 0.1, np.inf], 1.0, 10.0)
    np.testing.assert_allclose(low, [1.1, 8.6, 1.0])
    np.testing.assert_allclose(high, [2.9, 10.0, 10.0])
    np.testing.assert_allclose(conformal.clipped_width([2.0, 9.5], [0.1, 0.1], 1.0, 10.0), [1.8, 1.4])
    # normalized: the threshold is in units of the cell's difficulty
    np.testing.assert_allclose(conformal.half_widths([2.0, np.inf], "normalized", [0.05, 0.01]), [0.1, np.inf])
    assert conformal.half_widths(0.3, "per_country") == 0.3


def test_coverage_is_the_score_within_the_half_width() -> None:
    pred, human, lo, hi = np.array([2.0, 3.9]), np.array([2.5, 4.0]), 1.0, 4.0
    s = np.abs(pred - human) / (hi - lo)
    h = np.array([0.2, 0.01])
    low, high = conformal.interval(pred, h, lo, hi)
    np.testing.assert_array_equal(conformal.covered(s, h), (low <= human) & (human <= high))


def test_difficulty_is_the_persona_spread_over_the_range_with_a_floor() -> None:
    x = np.array([2.0, 3.0, 4.0])
    assert conformal.difficulty(x, 3.0) == pytest.approx(np.std(x, ddof=1) / 3.0)
    assert conformal.difficulty([2.0], 3.0) == conformal.DIFFICULTY_FLOOR  # one persona: no spread
    assert conformal.difficulty([2.0, 2.0001], 9.0) == conformal.DIFFICULTY_FLOOR


def test_the_cell_seed_is_asks() -> None:
    from valuesim.asking import _cell_seed

    for seed, c, q in [(0, "JPN", "Q1"), (7, "DEU", "AI_TRUST")]:
        assert conformal.cell_seed(seed, c, q) == _cell_seed(seed, c, q)

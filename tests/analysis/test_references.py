"""The reference points and noise floors, against hand computations."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from valuesim.analysis import references as ref


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([1, 2, 3, 4], [0, 0.5, 0.5, 0]),  # centre 2.5 between two codes
        ([1, 2, 3, 4, 5], [0, 0, 1, 0, 0]),  # centre is a code
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0]),
    ],
)
def test_midpoint_distribution_has_the_scale_centre_as_mean(codes: list[int], expected: list[float]) -> None:
    p = ref.midpoint_distribution(codes)
    assert p.tolist() == pytest.approx(expected)
    assert p @ np.asarray(codes) == pytest.approx((codes[0] + codes[-1]) / 2)


def test_midpoint_on_uneven_codes_splits_linearly() -> None:
    p = ref.midpoint_distribution([0, 1, 5])  # centre 2.5 lies between 1 and 5
    assert p.tolist() == pytest.approx([0, 0.625, 0.375])
    assert p @ np.array([0, 1, 5]) == pytest.approx(2.5)


def _human(rows: dict[tuple[str, str], list[float]], codes: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        [(c, q, code, s) for (c, q), shares in rows.items() for code, s in zip(codes, shares, strict=True)],
        schema=ref.LONG_SCHEMA, orient="row",
    )


def test_score_long_matches_hand_computation() -> None:
    codes = [1, 2, 3, 4]
    human = _human({("AAA", "Q1"): [0.1, 0.2, 0.3, 0.4]}, codes)
    pred = _human({("AAA", "Q1"): [0.25, 0.25, 0.25, 0.25]}, codes)
    cells = ref.score_long(pred, human, ["Q1"])
    # means 3.0 vs 2.5 on a range of 3; W1 = sum |F_p - F_h| / 3
    assert cells["mae"][0] == pytest.approx(0.5 / 3)
    assert cells["wasserstein"][0] == pytest.approx((0.15 + 0.2 + 0.15) / 3)


def test_other_countries_pools_respondents_with_their_weights() -> None:
    # AAA: answers 1,1; BBB: one respondent answering 4 with weight 3; CCC: answer 2 (weight 1)
    respondents = pl.DataFrame({
        "country": ["AAA", "AAA", "BBB", "CCC"], "respondent_id": ["a1", "a2", "b1", "c1"],
        "weight": [1.0, 1.0, 3.0, 1.0], "Q1": [1, 1, 4, 2],
    })
    human = _human({(c, "Q1"): [0.25] * 4 for c in ("AAA", "BBB", "CCC")}, [1, 2, 3, 4])
    pooled = ref.other_countries_reference(respondents, human, ["AAA", "BBB", "CCC"], ["Q1"])
    aaa = dict(pooled.filter(pl.col("country") == "AAA").select("code", "share").iter_rows())
    assert aaa == pytest.approx({1: 0.0, 2: 0.25, 3: 0.0, 4: 0.75})


def test_spread_is_over_repeats_of_country_means() -> None:
    frame = pl.DataFrame({"repeat": [0, 0, 1, 1], "country": ["A", "B", "A", "B"],
                          "mae": [0.1, 0.3, 0.2, 0.4], "wasserstein": [0.0, 0.0, 0.0, 0.0]})
    s = ref.spread(frame).row(0, named=True)
    assert s["mae"] == pytest.approx(0.25)  # repeats 0.2 and 0.3
    assert s["mae_sd"] == pytest.approx(np.std([0.2, 0.3], ddof=1))

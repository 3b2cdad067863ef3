from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from tests.fixtures.personas import make_respondents
from valuesim.errors import DataError
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import QuestionBank


def test_same_seed_same_sample_other_seed_differs(tiny_bank: QuestionBank) -> None:
    resp = make_respondents(tiny_bank, ["JPN", "DEU"], 300)
    a = sample_respondents(resp, ["JPN", "DEU"], 8, seed=0)
    b = sample_respondents(resp, ["JPN", "DEU"], 8, seed=0)
    c = sample_respondents(resp, ["JPN", "DEU"], 8, seed=1)
    assert a.equals(b)
    assert a["respondent_id"].to_list() != c["respondent_id"].to_list()
    assert a.group_by("country").len().sort("country")["len"].to_list() == [8, 8]
    assert a["draw"].to_list() == list(range(8)) * 2


def test_sample_ignores_row_order_and_other_countries(tiny_bank: QuestionBank) -> None:
    resp = make_respondents(tiny_bank, ["JPN", "DEU"], 200)
    shuffled = resp.sample(fraction=1.0, shuffle=True, seed=5)
    a = sample_respondents(resp, ["JPN", "DEU"], 6, seed=3)
    b = sample_respondents(shuffled, ["JPN"], 6, seed=3)
    assert a.filter(pl.col("country") == "JPN")["respondent_id"].to_list() == b["respondent_id"].to_list()


def test_without_replacement_and_small_countries(tiny_bank: QuestionBank) -> None:
    resp = make_respondents(tiny_bank, ["NZL"], 5)
    out = sample_respondents(resp, ["NZL"], 8, seed=0)
    assert sorted(out["respondent_id"].to_list()) == sorted(resp["respondent_id"].to_list())


def test_sampling_follows_skewed_weights(tiny_bank: QuestionBank) -> None:
    # 10 heavy respondents (weight 50) among 190 light ones (weight 1): a single draw
    # picks a heavy one with probability 500/690, a uniform draw with 10/200.
    resp = make_respondents(tiny_bank, ["JPN"], 200, missing=0.0)
    heavy = {f"JPN-{i:04d}" for i in range(0, 200, 20)}
    resp = resp.with_columns(
        pl.when(pl.col("respondent_id").is_in(list(heavy))).then(50.0).otherwise(1.0).alias("weight")
    )
    trials = 600
    hits = sum(
        sample_respondents(resp, ["JPN"], 1, seed=s)["respondent_id"][0] in heavy for s in range(trials)
    )
    expected = 500 / 690
    assert stats.binomtest(hits, trials, expected).pvalue > 1e-3
    assert stats.binomtest(hits, trials, 10 / 200).pvalue < 1e-12
    # with several draws per sample, heavy respondents are still over-represented
    counts = np.zeros(2)
    for s in range(100):
        ids = sample_respondents(resp, ["JPN"], 10, seed=s)["respondent_id"].to_list()
        assert len(set(ids)) == 10
        n_heavy = sum(i in heavy for i in ids)
        counts += [n_heavy, 10 - n_heavy]
    assert counts[0] / counts.sum() > 0.5  # uniform sampling would give 0.05


def test_a_smaller_sample_is_the_start_of_a_larger_one(tiny_bank: QuestionBank) -> None:
    # Growing personas.n_per_country keeps the personas (and the paid-for answers) of
    # the smaller run: successive sampling draws the same first k whatever n is.
    resp = make_respondents(tiny_bank, ["JPN", "DEU"], 300)
    resp = resp.with_columns((pl.int_range(pl.len()) % 7 + 1).cast(pl.Float64).alias("weight"))
    small = sample_respondents(resp, ["JPN", "DEU"], 3, seed=4)
    large = sample_respondents(resp, ["JPN", "DEU"], 8, seed=4)
    for c in ("JPN", "DEU"):
        ids = large.filter(pl.col("country") == c)["respondent_id"].to_list()
        assert small.filter(pl.col("country") == c)["respondent_id"].to_list() == ids[:3]


def test_bad_weights_and_absent_country_fail(tiny_bank: QuestionBank) -> None:
    resp = make_respondents(tiny_bank, ["JPN"], 20)
    with pytest.raises(DataError, match="no respondents for selected country DEU"):
        sample_respondents(resp, ["DEU"], 3, seed=0)
    zero = resp.with_columns(pl.lit(0.0).alias("weight"))
    with pytest.raises(DataError, match="non-positive weights"):
        sample_respondents(zero, ["JPN"], 3, seed=0)
    with pytest.raises(DataError, match="no 'weight' column"):
        sample_respondents(resp.drop("weight"), ["JPN"], 3, seed=0)

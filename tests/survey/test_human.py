"""Weighted distributions, Kish n_eff and the missing-data filter."""

from __future__ import annotations

import polars as pl
import pytest

from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.human import as_records, human_distributions
from valuesim.survey.missing_filter import filter_questions
from valuesim.survey.readers import ExtractResult


def _frame(bank: QuestionBank) -> pl.DataFrame:
    # hand-made respondents (not WVS rows): two countries, Q1 with one missing answer
    return pl.DataFrame(
        {
            "country": ["AAA", "AAA", "AAA", "BBB", "BBB"],
            "respondent_id": ["a1", "a2", "a3", "b1", "b2"],
            "weight": [1.0, 3.0, 2.0, 1.0, 1.0],
            "Q1": [1, 2, None, 4, 4],
            "Y003": [-2, 2, 0, None, None],
        },
        schema_overrides={"Q1": pl.Int64, "Y003": pl.Int64},
    )


def test_weighted_shares_mean_and_kish(bank: QuestionBank) -> None:
    items = [bank.item("Q1"), bank.item("Y003")]
    dist, summary = human_distributions(_frame(bank), bank, items=items)
    a = dist.filter((pl.col("country") == "AAA") & (pl.col("question") == "Q1"))
    assert a["code"].to_list() == [1, 2, 3, 4]
    assert a["share"].to_list() == pytest.approx([0.25, 0.75, 0.0, 0.0])
    s = summary.filter((pl.col("country") == "AAA") & (pl.col("question") == "Q1")).row(
        0, named=True
    )
    assert s["mean"] == pytest.approx(1.75)
    assert s["n"] == 2
    assert s["n_eff"] == pytest.approx(16 / 10)  # (1+3)^2 / (1+9)
    assert s["missing_share"] == pytest.approx(1 / 3)
    y = summary.filter((pl.col("country") == "AAA") & (pl.col("question") == "Y003")).row(
        0, named=True
    )
    assert y["mean"] == pytest.approx((-2 * 1 + 2 * 3 + 0 * 2) / 6)
    # a question nobody answered in a country: no distribution, missing share 1
    b = summary.filter((pl.col("country") == "BBB") & (pl.col("question") == "Y003")).row(
        0, named=True
    )
    assert (b["n"], b["missing_share"], b["mean"]) == (0, 1.0, None)
    assert dist.filter((pl.col("country") == "BBB") & (pl.col("question") == "Y003")).height == 0
    rec = as_records(dist, summary)[0]
    assert set(rec) == {"country", "question", "mean", "distribution", "n", "missing_share"}


def test_unknown_country_and_missing_column(bank: QuestionBank) -> None:
    with pytest.raises(DataError, match="countries ZZZ have no respondents"):
        human_distributions(_frame(bank), bank, items=[bank.item("Q1")], countries=["ZZZ"])
    with pytest.raises(DataError, match="lack item columns Q2"):
        human_distributions(_frame(bank), bank, items=[bank.item("Q2")])
    with pytest.raises(DataError, match="numeric"):
        human_distributions(_frame(bank), bank, items=[bank.item("Q262")])


def test_missing_filter(bank: QuestionBank) -> None:
    summary = pl.DataFrame(
        {
            "country": ["AAA", "AAA", "BBB", "BBB"],
            "question": ["Q1", "Q2", "Q1", "Q2"],
            "missing_share": [0.05, 0.19999, 0.20, 0.0],
        }
    )
    kept = filter_questions(summary, ["Q1", "Q2"], ["AAA", "BBB"], 0.20)
    assert kept.kept == ["Q2"]
    assert [(d["question"], d["country"]) for d in kept.dropped] == [("Q1", "BBB")]
    assert filter_questions(summary, ["Q1", "Q2"], ["AAA"], 0.20).kept == ["Q1", "Q2"]
    with pytest.raises(DataError, match="no human summary for CCC/Q1"):
        filter_questions(summary, ["Q1"], ["CCC"], 0.2)


def test_real_distributions_sum_to_one(few: ExtractResult, bank: QuestionBank) -> None:
    dist, summary = human_distributions(few.respondents, bank)
    sums = dist.group_by("country", "question").agg(pl.col("share").sum())["share"]
    assert sums.to_numpy() == pytest.approx(1.0)
    # Taiwan is the one paper country with non-unit weights: n_eff < n there
    twn = summary.filter((pl.col("country") == "TWN") & (pl.col("question") == "Q1")).row(
        0, named=True
    )
    assert twn["n_eff"] < twn["n"]
    jpn = summary.filter((pl.col("country") == "JPN") & (pl.col("question") == "Q1")).row(
        0, named=True
    )
    assert jpn["n_eff"] == pytest.approx(jpn["n"])

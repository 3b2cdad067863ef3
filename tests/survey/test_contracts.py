"""The Great Expectations contracts pass on good data and fail, readably, on broken data."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from valuesim.errors import ContractError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.contracts import validate_human, validate_respondents
from valuesim.survey.human import human_distributions
from valuesim.survey.missing_filter import filter_questions
from valuesim.survey.readers import ExtractResult

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "validation/contracts"


@pytest.fixture(scope="module")
def twn(few: ExtractResult) -> pl.DataFrame:
    return few.respondents.filter(pl.col("country") == "TWN")


def test_respondents_pass_and_report(twn: pl.DataFrame, bank: QuestionBank, tmp_path: Path) -> None:
    report = validate_respondents(
        twn, bank, expected_counts={"TWN": 1223}, contracts_dir=CONTRACTS, report_dir=tmp_path
    )
    assert report.success
    body = json.loads((tmp_path / "respondents.json").read_text())
    assert body["success"] is True
    assert body["countries"] == {"TWN": 1223}


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            pl.when(pl.int_range(pl.len()) == 0).then(-1).otherwise(pl.col("Q1")).alias("Q1"),
            r"respondents\.Q1 expect_column_values_to_be_in_set",
        ),
        (
            pl.when(pl.col("Q6") == 1).then(7).otherwise(pl.col("Q6")).alias("Q6"),
            r"Q6 expect_column_values_to_be_in_set",
        ),
        (
            pl.when(pl.int_range(pl.len()) == 0)
            .then(float("inf"))
            .otherwise(pl.col("weight"))
            .alias("weight"),
            r"weight expect_column_values_to_be_between",
        ),
        (
            pl.when(pl.int_range(pl.len()) == 0)
            .then(-1.0)
            .otherwise(pl.col("weight"))
            .alias("weight"),
            r"weight expect_column_values_to_be_between",
        ),
        (
            pl.lit("TWN-1").alias("respondent_id"),
            r"respondent_id expect_column_values_to_be_unique",
        ),
    ],
)
def test_respondents_broken(
    twn: pl.DataFrame, bank: QuestionBank, tmp_path: Path, breakage: pl.Expr, message: str
) -> None:
    broken = twn.with_columns(breakage)
    with pytest.raises(ContractError, match=message):
        validate_respondents(
            broken,
            bank,
            expected_counts={"TWN": 1223},
            contracts_dir=CONTRACTS,
            report_dir=tmp_path,
        )
    body = json.loads((tmp_path / "respondents.json").read_text())
    assert body["success"] is False
    assert body["failures"]


def test_duplicated_respondents_fail_naming_country_and_fix(
    twn: pl.DataFrame, bank: QuestionBank, tmp_path: Path
) -> None:
    """A table with 50 respondents twice (as an old extract produced) fails the contract
    with the country, the count and the fix, even when the expected count was doubled."""
    doubled = pl.concat([twn, twn.head(50)])
    with pytest.raises(
        ContractError, match=r"duplicated respondents: TWN 50 \(.*data\.drop_duplicates: true"
    ):
        validate_respondents(
            doubled,
            bank,
            expected_counts={"TWN": 1273},
            contracts_dir=CONTRACTS,
            report_dir=tmp_path,
        )
    body = json.loads((tmp_path / "respondents.json").read_text())
    assert body["duplicated"] == {"TWN": 50}
    failed = {(f["table"], f["kwargs"].get("column")) for f in body["failures"]}
    assert failed == {("respondents", "respondent_id"), ("country_counts", "duplicated")}


def test_respondents_row_counts(twn: pl.DataFrame, bank: QuestionBank, tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="country_counts"):
        validate_respondents(
            twn.head(1000),
            bank,
            expected_counts={"TWN": 1223},
            contracts_dir=CONTRACTS,
            report_dir=tmp_path,
        )
    with pytest.raises(
        ContractError, match=r"country_counts\.n expect_column_values_to_be_between"
    ):
        validate_respondents(
            twn.head(50),
            bank,
            expected_counts={"TWN": 50},
            contracts_dir=CONTRACTS,
            report_dir=tmp_path,
        )


def test_human_pass_and_broken(few: ExtractResult, bank: QuestionBank, tmp_path: Path) -> None:
    countries = ["JPN", "TWN"]
    dist, summary = human_distributions(few.respondents, bank, countries=countries)
    kept = filter_questions(summary, [i.id for i in bank.targets], countries, 0.2).to_json()
    assert validate_human(
        dist, summary, kept, countries, contracts_dir=CONTRACTS, report_dir=tmp_path
    ).success

    off = dist.with_columns(
        share=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("share") + 0.1)
        .otherwise(pl.col("share"))
    )
    with pytest.raises(ContractError, match=r"distribution_sums\.total"):
        validate_human(off, summary, kept, countries, contracts_dir=CONTRACTS, report_dir=tmp_path)
    negative = dist.with_columns(
        share=pl.when(pl.int_range(pl.len()) == 0).then(-0.1).otherwise(pl.col("share"))
    )
    with pytest.raises(
        ContractError, match=r"distributions\.share expect_column_values_to_be_between"
    ):
        validate_human(
            negative, summary, kept, countries, contracts_dir=CONTRACTS, report_dir=tmp_path
        )
    # a question with too much missing data must not be in the kept list
    lying = {**kept, "kept": [*kept["kept"], *[d["question"] for d in kept["dropped"]]]}
    assert kept["dropped"], "JPN drops some questions at 0.20 (Q210, Q211, Q236)"
    with pytest.raises(ContractError, match=r"kept_summary\.missing_share"):
        validate_human(
            dist, summary, lying, countries, contracts_dir=CONTRACTS, report_dir=tmp_path
        )
    assert json.loads((tmp_path / "human_distributions.json").read_text())["success"] is False

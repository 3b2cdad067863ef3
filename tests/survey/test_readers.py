"""Readers on the real WVS-7 files and on every supported format (written to tmp)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.readers import ExtractResult, read_source, select_countries


def test_contract_shape(few: ExtractResult, bank: QuestionBank) -> None:
    r = few.respondents
    assert r.columns == ["country", "respondent_id", "weight", *[i.id for i in bank.items]]
    assert r.schema["country"] == pl.Utf8
    assert r.schema["weight"] == pl.Float64
    assert all(r.schema[i.id] == pl.Int64 for i in bank.items)
    assert r.get_column("respondent_id").n_unique() == r.height
    assert few.country_counts == {"COL": 1520, "JPN": 1353, "TWN": 1223}
    for item in bank.items:
        if item.numeric:
            continue
        assert set(r.get_column(item.id).drop_nulls().unique().to_list()) <= set(item.codes), (
            item.id
        )


def test_missing_counts_match_raw_file(few_dir: Path, few: ExtractResult) -> None:
    raw = pd.read_csv(few_dir / "JPN.csv.gz", usecols=["Q6", "Q254"])
    counts = few.missing_counts.filter(pl.col("country") == "JPN")

    def n(item: str, reason: str) -> int:
        row = counts.filter((pl.col("item") == item) & (pl.col("reason") == reason))
        return int(row["n"].sum())

    assert n("Q6", "dont_know") == int((raw["Q6"] == -1).sum())
    assert n("Q6", "no_answer") == int((raw["Q6"] == -2).sum())
    # Q254 code 5 "I am not [nationality]" is not an answer
    assert n("Q254", "not_applicable") == int((raw["Q254"] == 5).sum())
    jpn = few.respondents.filter(pl.col("country") == "JPN")
    assert jpn["Q6"].null_count() == int((raw["Q6"] < 0).sum())


def test_weighted_means_match_independent_pandas(few_dir: Path, few: ExtractResult) -> None:
    """Weighted means from our reader equal a plain pandas computation on the raw CSV
    (codes > 0 are substantive for these items, per the WVS documentation)."""
    from valuesim.survey.bank import load_bank
    from valuesim.survey.human import human_distributions

    bank = load_bank(Path(__file__).resolve().parents[2] / "data/questions/wvs7.yaml")
    items = [bank.item("Q6"), bank.item("Q49")]
    _, summary = human_distributions(few.respondents, bank, items=items)
    for country in ("JPN", "TWN", "COL"):
        raw = pd.read_csv(few_dir / f"{country}.csv.gz", usecols=["W_WEIGHT", "Q6", "Q49"])
        for q in ("Q6", "Q49"):
            ok = raw[raw[q] > 0]
            expected = float((ok[q] * ok["W_WEIGHT"]).sum() / ok["W_WEIGHT"].sum())
            got = summary.filter((pl.col("country") == country) & (pl.col("question") == q))[
                "mean"
            ].item()
            assert got == pytest.approx(expected, abs=1e-12), (country, q)


def test_derived_indexes_computed_agree_with_file(
    few: ExtractResult, bank: QuestionBank, tmp_path: Path, few_dir: Path
) -> None:
    """Drop Y002/Y003 from the file; the reader recomputes them by the WVS definitions."""
    raw = pl.read_csv(few_dir / "TWN.csv.gz", infer_schema_length=0).drop("Y002", "Y003", "")
    path = tmp_path / "twn_noderived.parquet"
    raw.write_parquet(path)
    computed = read_source(path, bank).respondents
    from_file = few.respondents.filter(pl.col("country") == "TWN")
    for col in ("Y002", "Y003"):
        assert computed[col].to_list() == from_file[col].to_list(), col


@pytest.mark.parametrize("fmt", ["csv", "csv_semicolon", "parquet", "sav", "dta"])
def test_every_format_reads_the_same(
    fmt: str, few_dir: Path, bank: QuestionBank, tmp_path: Path
) -> None:
    ids = ["B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", *[i.id for i in bank.items]]
    pdf = pd.read_csv(few_dir / "TWN.csv.gz", usecols=ids)[ids]
    if fmt == "csv":
        path = tmp_path / "wvs.csv"
        pdf.to_csv(path, index=False)
    elif fmt == "csv_semicolon":
        path = tmp_path / "wvs.csv.gz"
        with gzip.open(path, "wt") as fh:
            pdf.to_csv(fh, index=False, sep=";")
    elif fmt == "parquet":
        path = tmp_path / "wvs.parquet"
        pdf.to_parquet(path)
    else:
        import pyreadstat

        path = tmp_path / f"wvs.{fmt}"
        if fmt == "sav":
            # declare the negative codes user-missing, as the official SPSS file does
            ranges = {c: [{"lo": -5, "hi": -1}] for c in ids[3:] if c != "Y003"}
            pyreadstat.write_sav(pdf, str(path), missing_ranges=ranges)
        else:
            pyreadstat.write_dta(pdf.rename(columns=str.lower), str(path))
    expected = read_source(few_dir / "TWN.csv.gz", bank)
    got = read_source(path, bank)
    assert got.respondents.equals(expected.respondents)
    assert got.missing_counts.equals(expected.missing_counts)


def test_missing_weight_column_gives_weight_one(
    few_dir: Path, bank: QuestionBank, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = pl.read_csv(few_dir / "JPN.csv.gz", infer_schema_length=0).drop("W_WEIGHT", "")
    path = tmp_path / "jpn.parquet"
    raw.write_parquet(path)
    r = read_source(path, bank).respondents
    assert r["weight"].unique().to_list() == [1.0]
    assert "W_WEIGHT" in caplog.text


def test_missing_columns_named(few_dir: Path, bank: QuestionBank, tmp_path: Path) -> None:
    raw = pl.read_csv(few_dir / "JPN.csv.gz", infer_schema_length=0).drop("Q6", "Q49", "")
    path = tmp_path / "jpn.parquet"
    raw.write_parquet(path)
    with pytest.raises(DataError, match=r"jpn\.parquet lacks required columns Q6, Q49"):
        read_source(path, bank)


def test_unknown_answer_code_is_an_error(few_dir: Path, bank: QuestionBank, tmp_path: Path) -> None:
    raw = pl.read_csv(few_dir / "JPN.csv.gz", infer_schema_length=0).drop("")
    raw = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("9")).otherwise(pl.col("Q1")).alias("Q1")
    )
    path = tmp_path / "jpn.parquet"
    raw.write_parquet(path)
    with pytest.raises(DataError, match="Q1 has code 9"):
        read_source(path, bank)


def test_bad_weights_are_an_error(few_dir: Path, bank: QuestionBank, tmp_path: Path) -> None:
    raw = pl.read_csv(few_dir / "JPN.csv.gz", infer_schema_length=0).drop("")
    raw = raw.with_columns(
        pl.when(pl.int_range(pl.len()) < 3)
        .then(pl.lit("0"))
        .otherwise(pl.col("W_WEIGHT"))
        .alias("W_WEIGHT")
    )
    path = tmp_path / "jpn.parquet"
    raw.write_parquet(path)
    with pytest.raises(DataError, match=r"jpn\.parquet row 1: W_WEIGHT is '0' \(3 rows outside"):
        read_source(path, bank)


def test_unknown_country(few: ExtractResult) -> None:
    with pytest.raises(DataError, match=r"countries XYZ not in .*it has COL, JPN, TWN"):
        select_countries(few, ["JPN", "XYZ"])
    assert select_countries(few, ["JPN"]).respondents["country"].unique().to_list() == ["JPN"]


def test_bad_paths_and_formats(bank: QuestionBank, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_source(tmp_path / "nope", bank)
    txt = tmp_path / "wvs.xlsx"
    txt.write_text("x")
    with pytest.raises(DataError, match="unsupported WVS file format"):
        read_source(txt, bank)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no WVS files"):
        read_source(empty, bank)
    broken = tmp_path / "broken.sav"
    broken.write_bytes(b"not an spss file")
    with pytest.raises(DataError, match=r"cannot read .*broken\.sav"):
        read_source(broken, bank)
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"PAR1garbage")
    with pytest.raises(DataError, match="cannot read"):
        read_source(garbage, bank)

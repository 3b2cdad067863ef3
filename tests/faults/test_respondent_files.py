"""Damaged or duplicated respondent files, through the real commands.

The WVS-format files here are synthetic (random codes in the official layout, written
to tmp dirs); no WVS row is used. Real files are only read by path, in the
``realdata`` test at the end.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank, load_bank
from valuesim.survey.readers import read_source

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "data/questions/wvs7.yaml"


@pytest.fixture(scope="module")
def bank() -> QuestionBank:
    return load_bank(BANK)


def wvs_frame(bank: QuestionBank, country: str, n: int, seed: int) -> pl.DataFrame:
    """``n`` synthetic respondents in the WVS-7 column layout (random admissible codes)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {
        "B_COUNTRY_ALPHA": [country] * n,
        "D_INTERVIEW": [str(700_000 + seed * 10_000 + i) for i in range(n)],
        "W_WEIGHT": rng.uniform(0.5, 1.5, n).round(4),
    }
    for item in bank.items:
        if item.numeric:
            cols[item.id] = rng.integers(18, 80, n)
        else:
            cols[item.id] = rng.choice(item.codes, n)
    return pl.DataFrame(cols)


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            frame.write_csv(fh)
    else:
        frame.write_csv(path)
    return path


@pytest.fixture(scope="module")
def wvs_src(bank: QuestionBank, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wvs_synth")
    write_csv(wvs_frame(bank, "JPN", 150, seed=1), d / "JPN.csv.gz")
    write_csv(wvs_frame(bank, "TWN", 120, seed=2), d / "TWN.csv")
    return d


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from valuesim.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def _error_line(out: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return errors[0]


def _human(src: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli("human", "--source", str(src), "--countries", "JPN", "--questions", "Q6", *extra)


def test_clean_source_reads_file_ids(wvs_src: Path, bank: QuestionBank) -> None:
    r = read_source(wvs_src, bank).respondents
    assert r.height == 270
    assert r.filter(pl.col("country") == "JPN")["respondent_id"][0] == "JPN-710000"


def test_same_file_twice_names_both_paths(wvs_src: Path, tmp_path: Path) -> None:
    for f in wvs_src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    # the same country again, renamed and re-compressed: different bytes, same respondents
    with gzip.open(wvs_src / "JPN.csv.gz", "rb") as fh:
        (tmp_path / "JPN_copy.csv").write_bytes(fh.read())
    out = _human(tmp_path)
    assert out.returncode == 2
    line = _error_line(out)
    assert "JPN.csv.gz" in line
    assert "JPN_copy.csv" in line
    assert "same respondents" in line


def test_duplicated_rows_fail_then_drop(wvs_src: Path, bank: QuestionBank, tmp_path: Path) -> None:
    jpn = pl.read_csv(wvs_src / "JPN.csv.gz", infer_schema_length=0)
    write_csv(pl.concat([jpn, jpn.head(50)]), tmp_path / "JPN.csv")
    out = _human(tmp_path)
    assert out.returncode == 2
    line = _error_line(out)
    assert "JPN 50" in line
    assert "data.drop_duplicates: true" in line

    dropped = _human(tmp_path, "--drop-duplicates")
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 50 identical duplicate rows" in dropped.stderr
    [record] = json.loads(dropped.stdout)
    clean = json.loads(_human(wvs_src).stdout)
    assert record == clean[0]  # n, mean and shares as if the copies were never there
    assert record["n"] <= 150


def test_conflicting_ids_are_never_dropped(
    wvs_src: Path, bank: QuestionBank, tmp_path: Path
) -> None:
    jpn = pl.read_csv(wvs_src / "JPN.csv.gz", infer_schema_length=0)
    other = jpn.head(3).with_columns(W_WEIGHT=pl.lit("2.0"))  # same ids, different rows
    write_csv(pl.concat([jpn, other]), tmp_path / "JPN.csv")
    with pytest.raises(DataError, match=r"JPN 3 .*3 repeat an interview id"):
        read_source(tmp_path, bank, drop_duplicates=True)


def test_rows_without_ids_numbered_and_checked(
    wvs_src: Path, bank: QuestionBank, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jpn = pl.read_csv(wvs_src / "JPN.csv.gz", infer_schema_length=0).drop("D_INTERVIEW")
    write_csv(jpn, tmp_path / "ok" / "JPN.csv")
    r = read_source(tmp_path / "ok", bank).respondents
    assert r["respondent_id"][0] == "JPN-row000001"
    assert "no usable interview ids (D_INTERVIEW absent" in caplog.text
    assert "for JPN;" in caplog.text
    write_csv(pl.concat([jpn, jpn.tail(7)]), tmp_path / "dup" / "JPN.csv")
    with pytest.raises(DataError, match=r"duplicated respondents .*JPN 7 .*identical rows"):
        read_source(tmp_path / "dup", bank)


@pytest.mark.parametrize("name", ["JPN.csv", "JPN.csv.gz"])
def test_cut_off_csv_names_file_and_line(
    wvs_src: Path, bank: QuestionBank, tmp_path: Path, name: str
) -> None:
    with gzip.open(wvs_src / "JPN.csv.gz", "rb") as fh:
        text = fh.read()
    cut = text[: text.rstrip(b"\n").rfind(b",") - 40]  # mid-way through the last row
    assert not cut.endswith(b"\n")
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(cut)
    else:
        path.write_bytes(cut)
    out = _human(path)
    assert out.returncode == 2
    line = _error_line(out)
    assert f"{name} line 151 has" in line
    assert "cut off" in line


def test_cut_off_gzip_stream(wvs_src: Path, bank: QuestionBank, tmp_path: Path) -> None:
    data = (wvs_src / "JPN.csv.gz").read_bytes()
    (tmp_path / "JPN.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"JPN\.csv\.gz is damaged or cut off"):
        read_source(tmp_path, bank)


def test_extract_stage_refuses_duplicates(wvs_src: Path, tmp_path: Path) -> None:
    for d in ("data/questions", "validation/contracts"):
        shutil.copytree(ROOT / d, tmp_path / d)
    src = tmp_path / "wvs"
    src.mkdir()
    shutil.copy(wvs_src / "JPN.csv.gz", src / "JPN.csv.gz")
    shutil.copy(wvs_src / "JPN.csv.gz", src / "JPN (1).csv.gz")  # a browser's second download
    (tmp_path / "params.yaml").write_text(f"data:\n  source: {src}\n")
    out = _cli("stage", "extract", cwd=tmp_path)
    assert out.returncode == 2
    line = _error_line(out)
    assert "JPN (1).csv.gz and" in line
    assert "same respondents" in line
    assert not (tmp_path / "data/interim/respondents.parquet").exists()


@pytest.mark.realdata
def test_real_files_have_unique_interview_ids(wvs_dir: Path, bank: QuestionBank) -> None:
    """Every real file carries D_INTERVIEW; only URY's is one value for all rows; no
    respondent is duplicated and no file repeats another."""
    r = read_source(wvs_dir, bank).respondents
    assert r["respondent_id"].n_unique() == r.height == 72184
    by_row = r.filter(pl.col("respondent_id").str.contains("-row"))["country"].unique()
    assert by_row.to_list() == ["URY"]

"""Damaged inputs that used to give silent wrong numbers or a traceback (issue 22, item 9).

Each probe runs the real `valuesim` command on a damaged file written to a tmp dir:
rows cut short in the middle of a CSV (read as missing answers: Q164 missing went
from 7.9% to 48.2% without a word), one absurd ``W_WEIGHT`` (1e308 made a country's
mean inf), a header-only file, a code of 1e23 in the data or a question file, and
`--demo-n 100000000` (a 45 GB allocation and a MemoryError traceback). Each is now one
`error:` line naming the file and line (or the option), exit 2.

The WVS-format files are synthetic (random codes in the official layout); the real
files are only read by path, and damaged copies of them live in tmp_path only.
"""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.study_files import write_ask_params
from valuesim.survey.bank import QuestionBank, load_bank

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "data/questions/wvs7.yaml"
CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
ROWS = 700


@pytest.fixture(scope="module")
def bank() -> QuestionBank:
    return load_bank(BANK)


def wvs_rows(bank: QuestionBank, n: int = ROWS, seed: int = 3) -> list[list[str]]:
    """Header and ``n`` synthetic JPN rows in the WVS-7 CSV layout: the unnamed index
    column first, and a text column whose cells hold the separator (quoted), as the
    real files' "Missing, Not available" cells do."""
    rng = np.random.default_rng(seed)
    header = ["", "B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", "note"]
    header += [i.id for i in bank.items]
    rows = [header]
    for k in range(n):
        codes = [str(rng.integers(18, 80)) if i.numeric else str(rng.choice(i.codes)) for i in bank.items]
        note = "Missing, Not available" if k % 7 == 0 else ""
        rows.append([str(k), "JPN", str(392_000_000 + k), f"{rng.uniform(0.2, 5):.4f}", note, *codes])
    return rows


def write(rows: list[list[str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:  # type: ignore[operator]
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


def human(src: Path, *extra: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "human", "--source", str(src), "--countries", "JPN", "--questions", "Q164", *extra],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )


def column(rows: list[list[str]], name: str) -> int:
    return rows[0].index(name)


@pytest.mark.parametrize("name", ["JPN.csv", "JPN.csv.gz"])
def test_rows_cut_short_mid_file_name_the_first_line(bank: QuestionBank, tmp_path: Path, name: str) -> None:
    rows = wvs_rows(bank)
    assert human(write(rows, tmp_path / "ok" / name)).returncode == 0
    # the probe: 600 rows in the middle cut short (Q164 and the rest lost), the
    # file ends cleanly; polars read them as 600 missing answers
    keep = column(rows, "Q164")
    cut = rows[:51] + [r[:keep] for r in rows[51:651]] + rows[651:]
    out = human(write(cut, tmp_path / "cut" / name))
    line = one_error_line(out)
    assert out.returncode == 2
    assert f"{name} line 52 has {keep} of {len(rows[0])} fields" in line
    assert "copy or download it again" in line


def test_a_row_with_extra_fields_names_its_line(bank: QuestionBank, tmp_path: Path) -> None:
    rows = wvs_rows(bank)
    rows[300] = [*rows[300], "7", "7"]
    line = one_error_line(human(write(rows, tmp_path / "JPN.csv")))
    assert f"JPN.csv line 301 has {len(rows[0]) + 2} fields, the header {len(rows[0])}" in line


def test_a_blank_line_mid_file_is_a_short_row(bank: QuestionBank, tmp_path: Path) -> None:
    rows = wvs_rows(bank)
    path = write(rows, tmp_path / "JPN.csv")
    text = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([*text[:200], b"", *text[200:]]))  # polars: a row of nulls
    line = one_error_line(human(path))
    assert f"JPN.csv line 201 has 1 of {len(rows[0])} fields" in line


def test_a_quoted_newline_is_one_record_and_lines_stay_right(bank: QuestionBank, tmp_path: Path) -> None:
    rows = wvs_rows(bank)
    rows[10][column(rows, "note")] = "first line\nsecond, line"  # one record over two lines
    assert human(write(rows, tmp_path / "ok" / "JPN.csv")).returncode == 0
    rows[20][column(rows, "W_WEIGHT")] = "1e308"
    line = one_error_line(human(write(rows, tmp_path / "bad" / "JPN.csv")))
    assert "JPN.csv line 22: W_WEIGHT is '1e308'" in line  # data row 20 is line 21, +1 for the newline


@pytest.mark.parametrize(
    ("weight", "shown"),
    [("1e308", "'1e308'"), ("inf", "'inf'"), ("nan", "'nan'"), ("0", "'0'"), ("-1", "'-1'"),
     ("1000.5", "'1000.5'"), ("", "empty"), ("heavy", "'heavy'")],
)
def test_absurd_or_non_finite_weights_name_file_and_line(
    bank: QuestionBank, tmp_path: Path, weight: str, shown: str
) -> None:
    rows = wvs_rows(bank)
    rows[6][column(rows, "W_WEIGHT")] = weight
    out = human(write(rows, tmp_path / "JPN.csv"))
    line = one_error_line(out)
    assert out.returncode == 2
    assert f"JPN.csv line 7: W_WEIGHT is {shown} (1 row outside (0, 1000])" in line
    assert "rescale the weights" in line


def test_weights_up_to_the_bound_are_read(bank: QuestionBank, tmp_path: Path) -> None:
    rows = wvs_rows(bank)
    rows[6][column(rows, "W_WEIGHT")] = "1000"
    rows[7][column(rows, "W_WEIGHT")] = "19.930071"  # the largest real WVS-7 weight (CHL)
    out = human(write(rows, tmp_path / "JPN.csv"))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", ["JPN.csv", "JPN.csv.gz", "JPN.parquet"])
def test_a_header_only_file_is_one_line(bank: QuestionBank, tmp_path: Path, name: str) -> None:
    header = wvs_rows(bank, n=0)
    path = tmp_path / name
    if name.endswith(".parquet"):
        import polars as pl

        pl.DataFrame({c or "idx": [] for c in header[0]}, schema={c or "idx": pl.Utf8 for c in header[0]}
                     ).write_parquet(path)
    else:
        write(header, path)
    line = one_error_line(human(path))
    assert f"{name} has no respondents, only a header" in line


@pytest.mark.parametrize(
    ("code", "expected"),
    [("1e23", "column Q164 has code 1e+23, beyond any survey code"),
     ("100000000000000000000000", "column Q164 has code 1e+23, beyond any survey code"),
     ("-1e23", "column Q164 has code -1e+23"),
     ("nan", "column Q164 has a non-numeric value 'nan'"),
     ("inf", "column Q164 has a non-numeric value 'inf'")],
)
def test_an_absurd_code_in_the_data_names_file_and_line(
    bank: QuestionBank, tmp_path: Path, code: str, expected: str
) -> None:
    rows = wvs_rows(bank)
    rows[6][column(rows, "Q164")] = code
    line = one_error_line(human(write(rows, tmp_path / "JPN.csv")))
    assert f"JPN.csv line 7: {expected}" in line


@pytest.mark.parametrize(
    ("answers", "missing", "expected"),
    [([{"code": 1, "label": "Agree"}, {"code": 10**23, "label": "Disagree"}], None,
      "answers[1].code 100000000000000000000000 is out of range; codes are integers from "
      "-1,000,000,000 to 1,000,000,000"),
     ([{"code": 1, "label": "Agree"}, {"code": 2, "label": "Disagree"}], {-(10**23): "dont_know"},
      "missing: code -100000000000000000000000 is out of range")],
    ids=["answer", "missing"],
)
def test_a_code_of_1e23_in_a_question_file_is_one_line(
    tmp_path: Path, testplugin_site: Path, answers: list[dict[str, object]],
    missing: dict[int, str] | None, expected: str,
) -> None:
    write_ask_params(tmp_path, model="fake")
    item: dict[str, object] = {"id": "NEW1", "text": "Do you agree?", "answers": answers}
    if missing:
        item["missing"] = missing
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"items": [item]}))
    env = {k: v for k, v in os.environ.items() if k not in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(testplugin_site), env.get("PYTHONPATH")]))
    env["VALUESIM_TEST_LOG"] = str(tmp_path / "paid.log")
    out = subprocess.run(
        [*CLI, "ask", "--questions", "q.yaml", "--countries", "JPN", "--model", "fake", "--method", "generic"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    line = one_error_line(out)
    assert line.startswith("error: q.yaml: item NEW1: ")
    assert expected in line
    assert not (tmp_path / "paid.log").exists()  # refused before anything was sent


def test_a_code_of_1e23_in_the_bank_is_one_line(tmp_path: Path) -> None:
    raw = yaml.safe_load(BANK.read_text())
    raw["items"][0]["answers"][-1]["code"] = 10**23
    bank = tmp_path / "bank.yaml"
    bank.write_text(yaml.safe_dump(raw, sort_keys=False))
    line = one_error_line(human(ROOT / "data/demo/aggregates.json", "--bank", str(bank)))
    assert f"question bank {bank} is invalid: items.0.answers." in line
    assert "less than or equal to 1000000000" in line


@pytest.mark.parametrize("value", ["100000000", "1e8", "100001", "0"])
@pytest.mark.parametrize("command", ["human", "map"])
def test_demo_n_is_bounded_before_anything_is_drawn(command: str, value: str) -> None:
    demo = str(ROOT / "data/demo/aggregates.json")
    args = ["human", "--source", demo, "-c", "JPN", "-q", "Q164"] if command == "human" else \
        ["map", "--source", demo]
    out = subprocess.run([*CLI, *args, "--demo-n", value], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "MemoryError" not in out.stderr
    assert "Invalid value for '--demo-n'" in out.stderr
    if value in ("100000000", "100001"):
        assert "100000" in out.stderr  # the bound is named


def test_demo_n_in_params_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"source": str(ROOT / "data/demo/aggregates.json"), "questions": str(BANK),
                 "demo_respondents_per_country": 100_000_000},
    }))
    out = subprocess.run([*CLI, "stage", "extract"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    line = one_error_line(out)
    assert "data.demo_respondents_per_country" in line
    assert "100000" in line
    assert not (tmp_path / "data/interim/respondents.parquet").exists()


@pytest.mark.realdata
def test_a_real_file_with_rows_cut_short_is_refused(wvs_dir: Path, tmp_path: Path) -> None:
    """The issue's probe on a damaged copy of the real JPN file (in tmp_path only)."""
    with gzip.open(wvs_dir / "JPN.csv.gz", "rb") as fh:
        lines = fh.read().split(b"\n")
    width = lines[0].count(b",") + 1
    cut = [lines[0], *(b",".join(x.split(b",")[:100]) if 1 <= k <= 600 else x
                       for k, x in enumerate(lines[1:], start=1))]
    (tmp_path / "JPN.csv").write_bytes(b"\n".join(cut))
    line = one_error_line(human(tmp_path / "JPN.csv"))
    assert f"JPN.csv line 2 has 100 of {width} fields" in line
    clean = human(wvs_dir / "JPN.csv.gz", "--format", "json")
    assert clean.returncode == 0, clean.stderr

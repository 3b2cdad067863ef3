"""`valuesim demo fit|generate` end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from valuesim.cli import main

ROOT = Path(__file__).resolve().parents[2]
BANK = str(ROOT / "data/questions/wvs7.yaml")
SHIPPED = str(ROOT / "data/demo/aggregates.json")


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _generate(*extra: str) -> list[str]:
    return ["demo", "generate", "--aggregates", SHIPPED, "--questions", BANK, *extra]


def test_generate_writes_parquet(tmp_path: Path):
    out = tmp_path / "pop.parquet"
    assert (
        _run(_generate("--n", "50", "--country", "JPN,TWN", "--seed", "3", "--out", str(out))) == 0
    )
    frame = pl.read_parquet(out)
    assert frame.height == 100
    assert frame.get_column("country").unique().sort().to_list() == ["JPN", "TWN"]
    assert frame.get_column("respondent_id")[0] == "JPN-demo-000001"
    assert [p.name for p in tmp_path.iterdir()] == ["pop.parquet"]


def test_generate_prints_csv(capsys: pytest.CaptureFixture[str]):
    assert _run(_generate("--n", "3", "--country", "COL")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("country,respondent_id,weight,")
    assert [line.split(",")[1] for line in lines[1:]] == [
        "COL-demo-000001",
        "COL-demo-000002",
        "COL-demo-000003",
    ]


def test_generate_unknown_country_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "pop.parquet"
    assert _run(_generate("--country", "XXX", "--out", str(out))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no demo aggregates for countries ['XXX']")
    assert "\n" not in err
    assert not out.exists()


def test_generate_bad_output_suffix_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _run(_generate("--out", str(tmp_path / "pop.xlsx"))) == 2
    assert "use a .parquet or .csv" in capsys.readouterr().err


def test_fit_missing_source_fails_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "agg.json"
    code = _run(
        [
            "demo",
            "fit",
            "--source",
            str(tmp_path / "nowhere"),
            "--out",
            str(out),
            "--questions",
            BANK,
        ]
    )
    assert code == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.realdata
def test_fit_then_generate_on_real_files(wvs_dir: Path, tmp_path: Path):
    src = tmp_path / "wvs"
    src.mkdir()
    for iso in ("JPN", "COL"):  # symlinks: the real files are never copied
        (src / f"{iso}.csv.gz").symlink_to(wvs_dir / f"{iso}.csv.gz")
    out = tmp_path / "agg.json"
    argv = ["demo", "fit", "--source", str(src), "--out", str(out), "--questions", BANK]
    assert _run([*argv, "--countries", "COL"]) == 0
    data = json.loads(out.read_text())
    assert data["synthetic_demo"] is True
    assert list(data["countries"]) == ["COL"]
    pop = tmp_path / "pop.csv"
    gen = ["demo", "generate", "--aggregates", str(out), "--questions", BANK]
    assert _run([*gen, "--n", "20", "--out", str(pop)]) == 0
    assert pl.read_csv(pop).get_column("country").unique().to_list() == ["COL"]
    assert _run([*argv, "--countries", "XXX"]) == 2

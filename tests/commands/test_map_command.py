from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.iw_population import make_population
from valuesim.cli import main
from valuesim.survey.bank import load_bank

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "data" / "questions" / "wvs7.yaml"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "respondents.parquet"
    make_population(load_bank(BANK), n_countries=10, n=100, seed=9).write_parquet(path)
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["map", "--source", *args, "--questions", str(BANK)])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_for_chosen_countries(source, capsys):
    code, out, _ = _run(capsys, str(source), "--countries", "jpn,TWN", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["country"] for r in rows] == ["JPN", "TWN"]
    assert set(rows[0]) == {"country", "secular", "self_expression", "n"}
    assert rows[0]["n"] == 100


def test_csv_all_and_plot(source, capsys, tmp_path):
    png = tmp_path / "m.png"
    code, out, err = _run(capsys, str(source), "--all", "--format", "csv", "--plot", str(png))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "country,secular,self_expression,n"
    assert len(lines) == 11
    assert png.exists()
    assert "wrote" in err


def test_plot_creates_one_missing_folder_and_says_so(source, capsys, tmp_path):
    code, _, err = _run(capsys, str(source), "--plot", str(tmp_path / "a" / "b" / "m.png"))
    assert code == 2
    assert f"neither {tmp_path / 'a' / 'b'} nor {tmp_path / 'a'} exists" in err
    assert not (tmp_path / "a").exists()
    code, _, err = _run(capsys, str(source), "--plot", str(tmp_path / "new" / "m.png"))
    assert code == 0
    assert f"created directory {tmp_path / 'new'}" in err
    assert (tmp_path / "new" / "m.png").stat().st_size > 0
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, str(source), "--plot", str(tmp_path / "file" / "m.png"))
    assert code == 2
    assert "is not a directory" in err


def test_table_is_default(source, capsys):
    code, out, _ = _run(capsys, str(source), "--countries", "PRI")
    assert code == 0
    assert out.splitlines()[0].split() == ["country", "secular", "self_expr", "n"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--countries", "JPN", "--all"], "not both"),
        (["--format", "xml"], "unknown --format"),
        (["--countries", "ZZZ"], "ZZZ are not on the map"),
    ],
)
def test_errors(source, capsys, args, message):
    code, _, err = _run(capsys, str(source), *args)
    assert code == 2
    assert err.startswith("error:")
    assert message in err

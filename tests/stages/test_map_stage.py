from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures.iw_population import make_population
from valuesim.config import CountryParams, DataParams, MapParams, Params
from valuesim.culturalmap.transform import IWTransform
from valuesim.errors import DataError
from valuesim.stages import map as map_stage
from valuesim.survey.bank import load_bank

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "data" / "questions" / "wvs7.yaml"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pop = make_population(load_bank(BANK), n_countries=14, n=120, seed=2)
    (tmp_path / "data" / "interim").mkdir(parents=True)
    pop.write_parquet(tmp_path / "data" / "interim" / "respondents.parquet")
    return tmp_path


def _params(select, extra=()) -> Params:
    return Params(
        data=DataParams(questions=str(BANK)),
        countries=CountryParams(select=select, extra=list(extra)),
        map=MapParams(min_items=3, zones=True),
    )


def test_stage_writes_every_output(workdir, capsys):
    map_stage.run(_params("hull", ["COL"]))
    sel = json.loads((workdir / "data/map/selected_countries.json").read_text())
    assert sel["how"] == "hull"
    assert sel["extra"] == ["COL"]
    assert "COL" in sel["countries"]
    pos = pl.read_csv(workdir / "data/map/positions.csv")
    assert pos.columns[:6] == [
        "country", "secular", "self_expression", "se_secular", "se_self_expression", "n",
    ]
    assert pos.height == 14
    assert (pos["se_secular"] > 0).all()
    t = IWTransform.load(workdir / "data/map/transform.json")
    for row in pos.iter_rows(named=True):
        assert row["secular"] == pytest.approx(t.country_positions[row["country"]][0], abs=0.05)
    plot = pl.read_csv(workdir / "reports/plots/map.csv")
    assert plot["selected"].sum() == len(sel["countries"])
    assert (workdir / "reports/figures/cultural_map.png").stat().st_size > 10_000
    assert "countries placed" in capsys.readouterr().out
    assert not [p for p in (workdir / "data").iterdir() if p.name.startswith(".")]


def test_stage_list_with_absent_country_writes_nothing(workdir):
    with pytest.raises(DataError, match="ZZZ"):
        map_stage.run(_params(["JPN", "ZZZ"]))
    assert not (workdir / "data" / "map").exists()


def test_stage_needs_the_extract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="run the extract stage first"):
        map_stage.run(_params("hull"))

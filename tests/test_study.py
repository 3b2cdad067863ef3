"""`valuesim.load_study` (issue 12): a study's outputs as polars frames, one-line errors
for what has not run. The files here are made-up numbers in the stages' formats."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import valuesim
from tests.fixtures.study_files import make_study
from valuesim.errors import DataError
from valuesim.study import Study, load_study, metrics_frame


def test_frames_of_a_study(tmp_path: Path) -> None:
    make_study(tmp_path)
    study = valuesim.load_study(tmp_path)  # the public API
    assert isinstance(study, Study)
    assert study.human()["share"].sum() == pytest.approx(1.0)
    assert study.runs() == [("m1", "country"), ("m1", "value")]
    sim = study.simulated()
    assert sim.columns[:2] == ["model", "method"]
    assert sim.height == 2
    assert study.simulated(method="value")["method"].to_list() == ["value"]
    assert study.simulated("m1", "value", level="answers").height == 2
    temps = study.temperatures()
    assert temps.filter(pl.col("question").is_null())["temperature"].to_list() == [1.5]
    assert temps.filter(pl.col("question") == "Q2")["temperature_plain"].to_list() == [1.9]
    m = study.metrics()
    assert m.filter((pl.col("metric") == "mae") & (pl.col("run") == "m1/value"))["value"].item() == 0.2
    assert m.filter(pl.col("metric") == "coverage")["stat"].to_list() == ["mean", "p5"]
    assert m.filter(pl.col("metric") == "nvar_human").row(0) == ("nvar_human", None, None, None, 0.29)
    assert m.filter(pl.col("metric") == "by_country").row(0) == ("by_country", "m1/value", "JPN", "mae", 0.25)


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda s: s.calibrated(), "data/calibrated/population.parquet not found; run the calibrate stage first (`dvc repro calibrate`)"),
        (lambda s: s.map_positions(), "data/map/positions.csv not found; run the map stage first"),
        (lambda s: s.simulated_map_positions(), "data/eval/map_positions.parquet not found; run the evaluate stage"),
        (lambda s: s.simulated("m1", "fewshot"), "data/simulated/m1/fewshot/population.parquet not found; run the simulate@m1-fewshot stage"),
        (lambda s: s.human_summary(), "data/human/summary.parquet not found; run the human stage"),
    ],
)
def test_what_has_not_run_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read, message) -> None:
    make_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        read(load_study("."))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_project_and_a_missing_directory(tmp_path: Path) -> None:
    study = load_study(tmp_path)
    assert study.runs() == []
    with pytest.raises(DataError, match="no simulated run"):
        study.simulated()
    with pytest.raises(DataError, match=r"reports/metrics\.json not found"):
        study.metrics()
    with pytest.raises(DataError, match=r"project directory .* not found"):
        load_study(tmp_path / "nowhere")


def test_metrics_frame_is_long_and_typed() -> None:
    frame = metrics_frame({"split_half": {"mae": 0.01, "mae_sd": 0.001}, "flag": True})
    assert frame.rows() == [("split_half", None, None, "mae", 0.01), ("split_half", None, None, "mae_sd", 0.001)]


def test_the_notebook_api_is_public() -> None:
    for name in ("ask", "run_ask", "AskResult", "load_study", "Study", "run_pilot", "ppi_mean"):
        assert name in valuesim.__all__
    assert callable(valuesim.ask)
    assert valuesim.ask.__module__ == "valuesim.asking"


def test_new_questions_of_a_study(tmp_path: Path) -> None:
    from valuesim.asking import RESULT_SCHEMA

    study = load_study(tmp_path)
    with pytest.raises(DataError, match=r"data/new_questions not found; run the new_questions stage"):
        study.new_questions()
    for method, rows in (("country", 0), ("value", 1)):
        d = tmp_path / "data/new_questions/m1" / method
        d.mkdir(parents=True)
        pl.DataFrame([{"country": "JPN", "question": "AI_TRUST", "method": method, "model": "m1",
                       "codes": [1, 2], "probs": [0.4, 0.6], "new": True}][:rows],
                     schema=RESULT_SCHEMA).write_parquet(d / "population.parquet")
    frame = study.new_questions()
    assert frame.schema == pl.Schema(RESULT_SCHEMA)
    assert frame.select("model", "method", "question").rows() == [("m1", "value", "AI_TRUST")]


def test_the_interval_tables_of_a_study(tmp_path: Path) -> None:
    study = load_study(tmp_path)
    with pytest.raises(DataError, match=r"data/eval/intervals\.parquet not found"):
        study.intervals()
    (tmp_path / "data/eval").mkdir(parents=True)
    pl.DataFrame({"model": ["m"], "coverage": [0.9]}).write_parquet(tmp_path / "data/eval/intervals.parquet")
    assert study.intervals()["coverage"].to_list() == [0.9]
    with pytest.raises(DataError, match=r"data/eval/interval_fits\.parquet not found"):
        study.interval_fits()

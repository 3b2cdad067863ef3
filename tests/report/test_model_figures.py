"""Figures 1B, 2, 8 and 11 across models: the model order, a two-model study through
calibrate -> evaluate -> report, and the report's reasons when a figure is missing."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures.study_data import COUNTRIES, QUESTIONS, build_study
from valuesim.config import ModelSpec, Params
from valuesim.report.captions import missing_figures
from valuesim.report.model_figures import model_order
from valuesim.stages import calibrate, evaluate, report

MAP_CODES = {"Q164": 10, "Q184": 10, "Q254": 4, "Q45": 3, "Q182": 10, "Q209": 3, "Q57": 2, "Q46": 4}


def _spec(size_b: float | None = None, open_: bool | None = None) -> ModelSpec:
    return ModelSpec(provider="openai", model="x", size_b=size_b, open=open_)


def test_models_run_proprietary_first_then_by_decreasing_size() -> None:
    specs = {"gemma": _spec(31, True), "gpt": _spec(200, False), "mini": _spec(8, False),
             "llama": _spec(70, True), "tiny": _spec(None, True), "mystery": _spec(400, None)}
    assert model_order(list(specs), specs) == ["gpt", "mini", "llama", "gemma", "tiny", "mystery"]


def test_without_size_or_openness_the_order_is_by_name() -> None:
    specs = {n: _spec() for n in ("zeta", "alpha", "mid")}
    assert model_order(["zeta", "alpha", "mid"], specs) == ["alpha", "mid", "zeta"]
    # a model without a spec (not in params) goes last, by name
    assert model_order(["b", "a", "zeta"], {"zeta": _spec(1, True)}) == ["zeta", "a", "b"]
    assert model_order(["a", "a"], {}) == ["a"]


def _params(models: dict[str, dict], **simulate: object) -> Params:
    return Params.model_validate({
        "simulate": {"methods": ["generic", "value"], "models": list(models), **simulate},
        "models": {name: {"provider": "transformers", "model": "embedded", **extra}
                   for name, extra in models.items()},
        "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
        "analysis": {"sample_sizes": [1, 2, 3], "subsample_repeats": 3, "bootstrap": 200},
    })


TWO = {"big": {"size_b": 70.0, "open": False}, "small": {"size_b": 7.0, "open": True}}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two_models")
    # same seed: the same humans; another sharpening makes the second model differ
    build_study(root, model="big", true_t=2.0, map_items=True)
    build_study(root, model="small", true_t=1.3, map_items=True)
    # the human respondents answer the map items too (the real extract always has them)
    resp = root / "data/interim/respondents.parquet"
    frame = pl.read_parquet(resp)
    rng = np.random.default_rng(5)
    extra = {q: rng.integers(1, top + 1, frame.height) for q, top in MAP_CODES.items()}
    extra |= {"Y003": rng.integers(-2, 3, frame.height), "Y002": rng.integers(1, 4, frame.height)}
    frame.with_columns(*(pl.Series(q, v, dtype=pl.Int64) for q, v in extra.items())).write_parquet(resp)
    old = Path.cwd()
    os.chdir(root)
    try:
        params = _params(TWO)
        calibrate.run(params)
        evaluate.run(params)
        report.run(params)
    finally:
        os.chdir(old)
    return root


def test_the_ensemble_rows_score_the_mean_distribution(two_models: Path) -> None:
    pop = pl.read_parquet(two_models / "data/calibrated/population.parquet")
    human = pl.read_parquet(two_models / "data/human/distributions.parquet")
    by_country = pl.read_parquet(two_models / "data/eval/by_country.parquet")
    assert sorted(set(by_country["model"])) == ["big", "ensemble", "small"]
    for method in ("generic", "value"):
        for country in COUNTRIES:
            errors = []
            for q, codes in QUESTIONS.items():
                mean_dist = np.mean([
                    pop.filter((pl.col("model") == m) & (pl.col("method") == method)
                               & (pl.col("country") == country) & (pl.col("question") == q))["probs_raw"][0]
                    for m in ("big", "small")], axis=0)
                h = human.filter((pl.col("country") == country) & (pl.col("question") == q))
                human_mean = float(np.dot(h["code"].to_numpy(), h["share"].to_numpy()))
                errors.append(abs(float(mean_dist @ np.array(codes)) - human_mean) / (max(codes) - min(codes)))
            got = by_country.filter((pl.col("model") == "ensemble") & (pl.col("method") == method)
                                    & (pl.col("country") == country))["mae"][0]
            assert got == pytest.approx(np.mean(errors), abs=1e-9)
    # the ensemble is tested and compared per question, but never a model in the summary
    wilcoxon = pl.read_parquet(two_models / "data/eval/wilcoxon.parquet")
    assert "ensemble" in set(wilcoxon["model"])
    assert "ensemble" in set(pl.read_parquet(two_models / "data/eval/per_question.parquet")["model"])
    for name in ("cells", "summary"):
        assert "ensemble" not in set(pl.read_parquet(two_models / f"data/eval/{name}.parquet")["model"])
    metrics = json.loads((two_models / "reports/metrics.json").read_text())
    assert not any(k.startswith("ensemble/") for k in metrics["mae"])


def test_two_models_get_every_cross_model_figure(two_models: Path) -> None:
    pngs = {p.name for p in (two_models / "reports/figures/study").glob("*.png")}
    assert {"sampled_map.png", "mae_by_model.png", "mae_heatmap.png", "per_question.png"} <= pngs
    assert "mae_by_country.png" not in pngs  # Figure 2 proper replaces the one-model view
    page = (two_models / "reports/index.html").read_text()
    assert "Figure 1B." in page
    assert "Figure 2." in page
    assert "black points are the mean over models" in page
    assert "need two or more models" not in page
    assert "is not shown" not in page
    sample = pl.read_parquet(two_models / "data/eval/map_sample.parquet")
    # generic answered the map items (value personas state them): 2,000 per model and country
    assert sample.group_by(["model", "method", "country"]).len()["len"].to_list() == [2000] * 6
    assert set(sample["method"]) == {"generic"}
    humans = pl.read_parquet(two_models / "data/eval/map_humans.parquet")
    assert sorted(set(humans["country"])) == sorted(COUNTRIES)
    # the like-for-like reference: the same humans drawn item by item, 2,000 per country
    independent = pl.read_parquet(two_models / "data/eval/map_humans_independent.parquet")
    assert sorted(set(independent["country"])) == sorted(COUNTRIES)
    assert independent.group_by("country").len()["len"].max() <= 2000
    caption = html.unescape(page)
    assert "makes the model look narrower than it is" in caption
    assert "On this run independence alone shrinks the human respondents' SD to " in caption


def test_the_report_says_why_cross_model_figures_are_missing() -> None:
    one = _params({"only": {}})
    notes = missing_figures(one, 1, None, None)
    assert any("need two or more models" in n for n in notes)
    assert any("Figure 1B" in n and "re-run `dvc repro evaluate`" in n for n in notes)
    off = _params({"only": {}}, map_items=False)
    assert any("simulate.map_items is off" in n for n in missing_figures(off, 2, None, None))
    value_only = Params.model_validate({**_params({"a": {}}).model_dump(),
                                        "simulate": {"methods": ["value"], "models": ["a"]}})
    assert any("none of simulate.methods" in n for n in missing_figures(value_only, 2, None, None))
    sample = pl.DataFrame({"model": ["a"], "method": ["generic"], "country": ["AAA"],
                           "secular": [0.0], "self_expression": [0.0]})
    empty_humans = pl.DataFrame(schema={"country": pl.Utf8, "weight": pl.Float64,
                                        "secular": pl.Float64, "self_expression": pl.Float64})
    assert any("lack the map items" in n for n in missing_figures(one, 2, sample, empty_humans))
    humans = pl.DataFrame({"country": ["AAA"], "weight": [1.0], "secular": [0.0], "self_expression": [0.0]})
    assert missing_figures(one, 2, sample, humans) == []

"""calibrate -> evaluate -> report on inputs built by tests/study_data.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures.study_data import (
    COUNTRIES,
    MAP_WEIGHTS,
    QUESTIONS,
    SECULAR,
    SELF_EXPRESSION,
    build_study,
)
from valuesim.analysis.metric_precision import DEFAULT_ATOL as METRIC_ATOL
from valuesim.config import Params
from valuesim.culturalmap.positions import MAP_POSITION_SCHEMA
from valuesim.errors import DataError
from valuesim.report.captions import map_notes
from valuesim.report.tables import shown_params
from valuesim.stages import calibrate, evaluate, report


def _params() -> Params:
    return Params.model_validate({
        "simulate": {"methods": ["generic", "value"], "models": ["tiny"]},
        "models": {"tiny": {"provider": "transformers", "model": "embedded"}},
        "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
        "analysis": {"sample_sizes": [1, 2, 3], "subsample_repeats": 3, "bootstrap": 200},
    })


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    root = tmp_path_factory.mktemp("study")
    truth = build_study(root, true_t=2.0, map_items=True)
    (root / "map_truth.json").write_text(json.dumps(truth["map"]))
    old = Path.cwd()
    os.chdir(root)
    try:
        params = _params()
        calibrate.run(params)
        evaluate.run(params)
        report.run(params)
    finally:
        os.chdir(old)
    return root


def test_calibrate_recovers_temperature_and_keeps_means(study: Path):
    temps = json.loads((study / "data/calibrated/temperatures.json").read_text())["temperatures"]
    # the generic run was built by sharpening the human distributions at T = 2
    assert list(temps["tiny/generic"]["loqo"].values()) == [pytest.approx(2.0, rel=1e-3)] * len(QUESTIONS)
    pop = pl.read_parquet(study / "data/calibrated/population.parquet")
    assert pop.height == 2 * 3 * len(QUESTIONS)
    for codes, raw, cal in pop.select("codes", "probs_raw", "probs_cal").iter_rows():
        assert np.dot(codes, raw) == pytest.approx(np.dot(codes, cal), abs=1e-9)
    # the flagged row (a one-hot on code 1) is not in AAA's Q1 population
    answers = pl.read_parquet(study / "data/simulated/tiny/generic/answers.parquet")
    good = answers.filter((pl.col("flag") == "") & (pl.col("country") == "AAA") & (pl.col("question") == "Q1"))
    row = pop.filter((pl.col("method") == "generic") & (pl.col("country") == "AAA") & (pl.col("question") == "Q1"))
    np.testing.assert_allclose(row["probs_raw"][0].to_list(), good["probs"][0].to_list())


def test_evaluate_scores_match_independent_computation(study: Path):
    cells = pl.read_parquet(study / "data/eval/cells.parquet")
    human = pl.read_parquet(study / "data/human/distributions.parquet")
    pop = pl.read_parquet(study / "data/calibrated/population.parquet")
    row = pop.filter((pl.col("method") == "value") & (pl.col("country") == "BBB") & (pl.col("question") == "Q3")).row(0, named=True)
    h = human.filter((pl.col("country") == "BBB") & (pl.col("question") == "Q3")).sort("code")
    hv = dict(zip(h["code"].to_list(), h["share"].to_list(), strict=True))
    codes = row["codes"]
    hp = np.array([hv.get(c, 0.0) for c in codes])
    pred = np.array(row["probs_raw"])
    want_mae = abs(pred @ codes - hp @ codes) / (codes[-1] - codes[0])
    got = cells.filter((pl.col("method") == "value") & (pl.col("country") == "BBB") & (pl.col("question") == "Q3"))
    assert got["mae"][0] == pytest.approx(want_mae)
    # generic was built to calibrate back to the humans exactly
    gen = cells.filter(pl.col("method") == "generic")
    assert gen["wasserstein_cal"].max() < 1e-6
    assert gen["wasserstein"].max() > 0.01  # (two-answer questions are fixed by their mean)
    m = json.loads((study / "reports/metrics.json").read_text())
    assert set(m["mae"]) == {"tiny/generic", "tiny/value", "reference/midpoint", "reference/uniform",
                             "reference/other_countries"}
    assert m["mae"]["tiny/value"] == pytest.approx(
        cells.filter(pl.col("method") == "value").group_by("country").agg(pl.col("mae").mean())["mae"].mean(), abs=METRIC_ATOL)
    assert set(m["by_country"]["tiny/value"]) == {"AAA", "BBB", "CCC"}


def _human(study: Path) -> dict[tuple[str, str], np.ndarray]:
    human = pl.read_parquet(study / "data/human/distributions.parquet")
    out = {}
    for (c, q), grp in human.group_by(["country", "question"]):
        shares = dict(zip(grp["code"].to_list(), grp["share"].to_list(), strict=True))
        out[(c, q)] = np.array([shares.get(code, 0.0) for code in QUESTIONS[q]])
    return out


def test_references_match_independent_computation(study: Path):
    human = _human(study)
    ref = pl.read_parquet(study / "data/eval/reference_cells.parquet")
    assert set(ref["model"]) == {"reference"}
    assert set(ref["method"]) == {"midpoint", "uniform", "other_countries"}
    for c in COUNTRIES:
        for q, codes in QUESTIONS.items():
            r = np.array(codes, dtype=float)
            span = r[-1] - r[0]
            mean_h = human[(c, q)] @ r
            got = {m: v for m, v in ref.filter((pl.col("country") == c) & (pl.col("question") == q))
                   .select("method", "mae").iter_rows()}
            assert got["midpoint"] == pytest.approx(abs((r[0] + r[-1]) / 2 - mean_h) / span)
            assert got["uniform"] == pytest.approx(abs(r.mean() - mean_h) / span)
            # every country has 1000 respondents of weight 1: the pool is the plain average
            pooled = np.mean([human[(o, q)] for o in COUNTRIES if o != c], axis=0)
            assert got["other_countries"] == pytest.approx(abs(pooled @ r - mean_h) / span)
    m = json.loads((study / "reports/metrics.json").read_text())
    want = ref.filter(pl.col("method") == "midpoint").group_by("country").agg(pl.col("mae").mean())["mae"].mean()
    assert m["mae"]["reference/midpoint"] == pytest.approx(want, abs=METRIC_ATOL)
    # each method is tested against each reference, per country
    w = pl.read_parquet(study / "data/eval/wilcoxon.parquet").filter(pl.col("vs_reference"))
    assert w.height == 2 * 3 * len(COUNTRIES)
    assert set(w["method_b"]) == {"midpoint", "uniform", "other_countries"}
    # and over questions by the paired test: the method pair and each method vs each reference
    paired = pl.read_parquet(study / "data/eval/paired_tests.parquet")
    assert paired.height == 1 + 2 * 3
    assert set(paired.filter(pl.col("vs_reference"))["b"]) == {"midpoint", "uniform", "other_countries"}
    assert set(paired["n_questions"]) == {len(QUESTIONS)}
    assert paired["p_bh"].is_finite().all()


def test_floors_and_coverage_are_reported(study: Path):
    m = json.loads((study / "reports/metrics.json").read_text())
    # every answer has coverage 0.9 except one flagged row of coverage 0 per run
    rows = 3 * len(COUNTRIES) * len(QUESTIONS)
    assert m["coverage"]["tiny/value"] == {"mean": pytest.approx(0.9 * rows / (rows + 1), abs=METRIC_ATOL),
                                           "p5": pytest.approx(0.9)}
    assert m["coverage"]["tiny/generic"]["mean"] == pytest.approx(0.9 * (rows / 3) / (rows / 3 + 1), abs=METRIC_ATOL)
    floor = m["actual_answer_floor"]
    assert set(floor) == {"tiny/value"}  # persona methods only
    assert floor["tiny/value"]["n"] == 3
    assert 0 < floor["tiny/value"]["mae_sd"] < floor["tiny/value"]["mae"]
    # its normal approximation sqrt(2/pi) sigma / sqrt(N) is stated beside it
    assert floor["tiny/value"]["mae_normal"] == pytest.approx(floor["tiny/value"]["mae"], rel=0.25)
    # this study has no question bank, so nothing says what the personas state: no
    # persona-information floor, and the report says the method is not read against one
    assert m["persona_information_floor"] == {}
    assert pl.read_parquet(study / "data/eval/persona_information_floor.parquet").is_empty()
    assert "not read against a floor" in (study / "reports/index.html").read_text()
    assert m["human_sampling_noise"]["mae"] == pytest.approx(m["split_half"]["mae"] / 2, abs=METRIC_ATOL)
    f = pl.read_parquet(study / "data/eval/actual_answer_floor.parquet")
    by_n = f.group_by("n").agg(pl.col("mae").mean()).sort("n")["mae"].to_list()
    assert by_n == sorted(by_n, reverse=True)  # more personas, lower floor
    # two halves of 500 respondents differ far less than three personas do
    assert 0 < m["split_half"]["mae"] < floor["tiny/value"]["mae"]


def test_evaluate_curves(study: Path):
    ss = pl.read_parquet(study / "data/eval/sample_size.parquet")
    # generic has one "persona" per country, so only n = 1 exists for it
    assert set(ss.filter(pl.col("method") == "generic")["n"].to_list()) == {1}
    full = ss.filter((pl.col("method") == "value") & (pl.col("n") == 3))
    cells = pl.read_parquet(study / "data/eval/by_country.parquet").filter(pl.col("method") == "value")
    # all three personas = the full population
    assert dict(full.filter(pl.col("repeat") == 0).select("country", "mae").iter_rows()) == pytest.approx(
        dict(cells.select("country", "mae").iter_rows()))
    temp = pl.read_parquet(study / "data/eval/temperature.parquet")
    mp = temp.filter(pl.col("scaling") == "mean_preserving")
    for (_m,), grp in mp.group_by(["method"]):
        assert grp["mae"].max() - grp["mae"].min() < 1e-9  # constant by design
    for name in ("mae_by_country.csv", "sample_size.csv", "temperature.csv"):
        assert (study / "reports/plots" / name).stat().st_size > 0


def test_map_items_place_methods_on_the_map_and_stay_out_of_the_metrics(study: Path):
    truth = json.loads((study / "map_truth.json").read_text())
    positions = pl.read_parquet(study / "data/eval/map_positions.parquet")
    # generic answered the map items; value personas state them, so value has none
    assert positions.select("model", "method").unique().rows() == [("tiny", "generic")]
    assert sorted(positions["country"]) == sorted(COUNTRIES)
    for country, secular, self_expression in positions.select("country", "secular", "self_expression").iter_rows():
        e = truth[country]
        assert secular == pytest.approx(sum(w * e[i] for w, i in zip(MAP_WEIGHTS, SECULAR, strict=True)))
        assert self_expression == pytest.approx(
            sum(w * e[i] for w, i in zip(MAP_WEIGHTS, SELF_EXPRESSION, strict=True)))
    # the metrics see the target questions only
    for name in ("cells", "by_country"):
        frame = pl.read_parquet(study / f"data/eval/{name}.parquet")
        if "question" in frame.columns:
            assert set(frame["question"]) == set(QUESTIONS)
    assert set(pl.read_parquet(study / "data/calibrated/population.parquet")["question"]) == set(QUESTIONS)
    page = (study / "reports/index.html").read_text()
    assert "human positions only" not in page
    assert "Not on the cultural map: value" in page


def test_report_is_self_contained(study: Path):
    page = (study / "reports/index.html").read_text()
    assert "data:image/png;base64," in page
    assert "src=\"http" not in page
    assert "href=\"http" not in page
    assert "synthetic demo population" in page
    assert "Test citation (synthetic)." in page
    assert "not people" in page  # the ethical caveats
    pngs = sorted(p.name for p in (study / "reports/figures/study").glob("*.png"))
    assert {"cultural_map.png", "mae_heatmap.png", "normalized_variance.png", "temperature.png",
            "sample_size.png", "per_question.png", "mae_by_country.png"} <= set(pngs)


def test_missing_inputs_fail_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="dvc repro human"):
        calibrate.run(_params())
    build_study(tmp_path, methods=("generic",))
    with pytest.raises(DataError, match="method value"):
        calibrate.run(_params())
    with pytest.raises(DataError, match="dvc repro calibrate"):
        evaluate.run(_params())


def test_map_notes_say_why_a_method_has_no_position():
    empty = pl.DataFrame(schema=MAP_POSITION_SCHEMA)
    off = Params.model_validate({**_params().model_dump(), "simulate": {
        **_params().simulate.model_dump(), "map_items": False}})
    assert "human positions only" in map_notes(off, empty)[0]
    notes = map_notes(_params(), empty)
    assert notes[0].startswith("Not on the cultural map: value.")
    assert notes[1].startswith("No map position for generic")


def test_a_temperature_on_the_grid_edge_is_called_a_bound():
    from valuesim.report.findings import temperature_edge_findings

    temps = {"m/value": {"loqo_median": 8.0, "plain": {"loqo_median": 5.1}},
             "m/generic": {"loqo_median": 2.0, "plain": {"loqo_median": 0.25}}}
    lines = temperature_edge_findings(temps, 0.25, 8.0, {})
    assert len(lines) == 2
    assert "m, value: the fitted mean-preserving temperature (8, " in lines[0]
    assert "upper edge" in lines[0]
    assert "calibration.t_grid_max" in lines[0]
    assert "m, generic: the fitted plain temperature (0.25," in lines[1]
    assert "lower edge" in lines[1]
    assert "calibration.t_grid_min" in lines[1]


def test_the_report_prints_server_urls_without_credentials():
    params = Params.model_validate({**_params().model_dump(), "models": {
        "tiny": {"provider": "openai", "model": "m", "base_url": "http://user:s3cret@10.0.0.5:8000/v1?api_key=k3y"}}})
    shown = shown_params(params)
    url = shown["models"]["tiny"]["base_url"]
    assert "s3cret" not in url
    assert "k3y" not in url
    assert "10.0.0.5:8000/v1" in url

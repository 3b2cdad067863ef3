"""report.captions and report.tables: the report's words and tables, without a pipeline run."""

from __future__ import annotations

import polars as pl
import pytest

from valuesim.config import Params
from valuesim.culturalmap.positions import MAP_POSITION_SCHEMA
from valuesim.report import captions
from valuesim.report.tables import curve_runs, floor_table, temperature_table


def _params(**simulate: object) -> Params:
    return Params.model_validate({
        "simulate": {"methods": ["generic", "value", "sociodemographic"], "models": ["tiny"], **simulate},
        "models": {"tiny": {"provider": "transformers", "model": "embedded"},
                   "api": {"provider": "openai", "model": "gpt-x"}},
    })


def test_provenance_says_synthetic_or_real_and_escapes() -> None:
    synthetic = captions.provenance({"synthetic": True, "source": "<demo>.json",
                                     "countries": {"JPN": 10, "DEU": 1200}, "citation": "A & B"})
    assert "synthetic demo population" in synthetic
    assert "<code>&lt;demo&gt;.json</code>" in synthetic
    assert "2 countries, 1,210 respondents" in synthetic
    assert synthetic.endswith("Citation: A &amp; B")
    real = captions.provenance({"synthetic": False, "countries": {}})
    assert "real World Values Survey wave 7 respondents" in real
    assert "source <code>?</code>" in real
    assert real.endswith("Citation: n/a")


def test_model_names_say_what_runs() -> None:
    names = captions.model_names(_params())
    assert names == {"tiny": "tiny (SmolLM2-135M-Instruct, embedded)", "api": "api (openai: gpt-x)"}


def test_map_caption_and_notes() -> None:
    empty = pl.DataFrame(schema=MAP_POSITION_SCHEMA)
    placed = pl.DataFrame([{"model": "tiny", "method": "generic", "country": "JPN", "secular": 0.1,
                            "self_expression": 0.2}], schema=MAP_POSITION_SCHEMA)
    assert "human country positions (selected countries highlighted)" in captions.map_caption(empty)
    assert "open markers" in captions.map_caption(placed)
    assert "human positions only" in captions.map_notes(_params(map_items=False), placed)[0]
    notes = captions.map_notes(_params(), placed)
    assert notes == [
        "Not on the cultural map: value. These personas state the respondent's own answers to the map "
        "items, so their positions would only echo the persona text.",
        "No map position for sociodemographic: too few usable answers to the map items.",
    ]


def test_per_question_axes_prefer_country_across_and_value_up() -> None:
    assert captions.per_question_axes(["generic"]) is None
    assert captions.per_question_axes(["generic", "value", "country"]) == ("value", "country")
    assert captions.per_question_axes(["generic", "sociodemographic"]) == ("sociodemographic", "generic")
    assert captions.per_question_axes(["value", "generic"]) == ("generic", "value")
    assert "value vs country" in captions.per_question("value", "country")


def test_extra_findings_go_before_the_closing_synthetic_line() -> None:
    found = ["a", "b", "synthetic data"]
    assert captions.insert_before_closing(found, ["x"], synthetic=True) == ["a", "b", "x", "synthetic data"]
    assert captions.insert_before_closing(found, ["x"], synthetic=False) == [*found, "x"]
    assert captions.insert_before_closing(found, [], synthetic=True) == found
    assert len(captions.CAVEATS) == 5
    assert "not people's answers" in captions.CAVEATS[0]


def test_report_tables() -> None:
    temps = temperature_table({"m/value": {"overall": 1.5, "loqo_median": 1.4, "plain": {"loqo_median": 2.0}},
                               "m/generic": {"overall": 1.0, "loqo_median": 1.1}})
    assert temps.rows() == [("m/value", 1.5, 1.4, "", 2.0, ""), ("m/generic", 1.0, 1.1, "", None, "")]
    inf = float("inf")
    flagged = temperature_table({"m/value": {"overall": inf, "loqo_median": inf, "edge": "infinity",
                                             "plain": {"loqo_median": 5.0, "edge": None}},
                                 "m/country": {"overall": 0.25, "loqo_median": 0.25, "edge": "lower"}})
    assert flagged.rows() == [("m/value", inf, inf, "no: lowest at T = ∞", 5.0, "yes"),
                              ("m/country", 0.25, 0.25, "no: lowest grid point (a bound)", None, "")]
    sizes = pl.DataFrame({"model": ["m"] * 3, "method": ["a", "a", "b"], "n": [1, 2, 1],
                          "mae": [0.3, 0.2, 0.1]})
    assert curve_runs(sizes)["method"].to_list() == ["a", "a"]  # b has a single size: no curve
    floor = pl.DataFrame({"n": [1, 1, 2, 2], "repeat": [0, 1, 0, 1], "country": ["A"] * 4, "mae": [0.2, 0.4, 0.1, 0.3],
                          "wasserstein": [0.5, 0.7, 0.4, 0.6]})
    half = {"mae": 0.05, "mae_sd": 0.01, "wasserstein": 0.1, "wasserstein_sd": 0.02}
    persona = pl.DataFrame({"method": ["value"] * 2, "n": [2, 2], "repeat": [0, 1], "country": ["A"] * 2,
                            "mae": [0.02, 0.04]})
    table = floor_table(floor, half, persona)
    assert table["reference"].to_list() == [
        "persona-information floor (value), n = 2",
        "actual-answer floor (n respondents' own answers), n = 1",
        "actual-answer floor (n respondents' own answers), n = 2",
        "human split-half (two halves against each other)",
        "human sampling noise (split-half / 2: a perfect predictor against the full sample)"]
    assert table["mae"].to_list() == pytest.approx([0.03, 0.3, 0.2, 0.05, 0.025])
    assert table["wasserstein"][-1] == pytest.approx(0.05)  # halved too
    assert floor_table(floor, None).height == 2

"""analysis.evaluation helpers: the run's N, the floors at that N, and the plot tables."""

from __future__ import annotations

import polars as pl
import pytest

from valuesim.analysis.evaluation import (
    floor_columns,
    personas_per_country,
    plot_tables,
    run_floors,
    run_persona_floors,
)


def test_personas_per_country_counts_answering_personas_of_the_fullest_country() -> None:
    answers = pl.DataFrame({
        "country": ["A", "A", "A", "B", "B"],
        "persona_id": ["a1", "a2", "a3", "b1", "b1"],
        "flag": [None, "", "no admissible answer", None, None],
    })
    assert personas_per_country(answers) == 2  # a3 never answered
    assert personas_per_country(answers.drop("flag")) == 3


def test_floors_at_each_runs_n_become_summary_columns() -> None:
    spread = pl.DataFrame({"n": [2, 5], "mae": [0.3, 0.1], "mae_sd": [0.03, 0.01],
                           "wasserstein": [0.6, 0.2], "wasserstein_sd": [0.06, 0.02]})
    floors = run_floors(spread, {("m", "value"): 5, ("m", "fewshot"): 2})
    assert floors == {
        "m/value": {"n": 5, "mae": 0.1, "mae_sd": 0.01, "wasserstein": 0.2, "wasserstein_sd": 0.02},
        "m/fewshot": {"n": 2, "mae": 0.3, "mae_sd": 0.03, "wasserstein": 0.6, "wasserstein_sd": 0.06},
    }
    persona_spread = pl.DataFrame({"method": ["value", "value", "fewshot"], "n": [2, 5, 5],
                                   "mae": [0.05, 0.02, 0.04], "mae_sd": [0.005, 0.002, 0.004]})
    persona = run_persona_floors(persona_spread, {("m", "value"): 5, ("m", "fewshot"): 2})
    # each run gets its own method's floor at its own N; fewshot has none at N = 2
    assert persona == {"m/value": {"n": 5, "mae": 0.02, "mae_sd": 0.002}}
    cols = floor_columns(floors, persona)
    assert cols.columns == ["model", "method", "n_personas", "answer_floor_mae", "answer_floor_mae_sd",
                            "answer_floor_wasserstein", "persona_floor_mae", "persona_floor_mae_sd"]
    assert cols.row(0) == ("m", "value", 5, 0.1, 0.01, 0.2, 0.02, 0.002)
    assert cols.row(1) == ("m", "fewshot", 2, 0.3, 0.03, 0.6, None, None)
    assert floor_columns({}).is_empty()


def test_plot_tables_group_lines_by_run() -> None:
    countries = pl.DataFrame({"model": ["m", "reference"], "method": ["value", "uniform"],
                              "country": ["A", "A"], "mae": [0.1, 0.2], "wasserstein_cal": [0.3, 0.4]})
    sizes = pl.DataFrame({"model": ["m"] * 4, "method": ["value"] * 4, "n": [2, 1, 2, 1],
                          "mae": [0.2, 0.4, 0.4, 0.6]})
    spread = pl.DataFrame({"n": [1, 2, 9], "mae": [0.5, 0.3, 0.1]})
    temperature = pl.DataFrame({"model": ["m", "m"], "method": ["value"] * 2, "scaling": ["plain"] * 2,
                                "temperature": [2.0, 1.0], "mae": [0.2, 0.1], "wasserstein": [0.4, 0.3]})
    persona = pl.DataFrame({"method": ["value"] * 3, "n": [2, 1, 9], "mae": [0.02, 0.03, 0.01]})
    plots = plot_tables(countries, sizes, spread, temperature, [1, 2], persona)
    assert list(plots) == ["mae_by_country.csv", "sample_size.csv", "temperature.csv"]
    assert plots["mae_by_country.csv"]["run"].to_list() == ["m/value", "reference/uniform"]
    assert plots["sample_size.csv"].rows() == [
        ("m/value", 1, pytest.approx(0.5)), ("m/value", 2, pytest.approx(0.3)),
        ("reference/actual_answer_floor", 1, 0.5), ("reference/actual_answer_floor", 2, 0.3),
        ("reference/persona_information_floor/value", 1, 0.03),
        ("reference/persona_information_floor/value", 2, 0.02)]
    assert plot_tables(countries, sizes, spread, temperature, [1, 2])["sample_size.csv"].height == 4
    assert plots["temperature.csv"].rows() == [("m/value/plain", 1.0, 0.1, 0.3), ("m/value/plain", 2.0, 0.2, 0.4)]

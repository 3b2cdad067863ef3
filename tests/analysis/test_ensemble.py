"""The Figure 11 ensemble: the mean of the models' predicted distributions per cell."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from valuesim.analysis.ensemble import ENSEMBLE, ensemble_population
from valuesim.calibration.fit import POPULATION_SCHEMA
from valuesim.errors import DataError


def _population(models: tuple[str, ...], seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for method in ("generic", "value"):
            for country in ("AAA", "BBB"):
                for question, codes in (("Q1", [1, 2, 3, 4]), ("Q2", [1, 2])):
                    rows.append({
                        "model": model, "method": method, "country": country, "question": question,
                        "codes": codes, "probs_raw": rng.dirichlet(np.ones(len(codes))).tolist(),
                        "probs_cal": rng.dirichlet(np.ones(len(codes))).tolist(), "temperature": 1.5,
                        "probs_plain": rng.dirichlet(np.ones(len(codes))).tolist(),
                        "temperature_plain": 2.0,
                    })
    return pl.DataFrame(rows, schema=POPULATION_SCHEMA)


def test_the_ensemble_is_the_mean_of_the_models_distributions() -> None:
    pop = _population(("big", "mid", "small"))
    ens = ensemble_population(pop)
    assert ens.schema == pop.schema
    assert set(ens["model"]) == {ENSEMBLE}
    assert ens.height == 8  # 2 methods x 2 countries x 2 questions
    # independently: a plain loop over cells, summing the three models' lists
    by_cell: dict[tuple, list[dict]] = {}
    for row in pop.iter_rows(named=True):
        by_cell.setdefault((row["method"], row["country"], row["question"]), []).append(row)
    for row in ens.iter_rows(named=True):
        models = by_cell[(row["method"], row["country"], row["question"])]
        for col in ("probs_raw", "probs_cal", "probs_plain"):
            expected = [sum(m[col][k] for m in models) / 3 for k in range(len(row["codes"]))]
            assert row[col] == pytest.approx(expected, abs=1e-12)
        assert row["codes"] == models[0]["codes"]
        assert row["temperature"] is None
        assert row["temperature_plain"] is None


def test_one_model_has_no_ensemble_and_a_cell_missing_from_a_model_is_left_out() -> None:
    assert ensemble_population(_population(("only",))).is_empty()
    pop = _population(("a", "b"))
    gap = pop.filter(~((pl.col("model") == "b") & (pl.col("country") == "BBB") & (pl.col("question") == "Q2")))
    ens = ensemble_population(gap)
    assert ens.height == 6
    assert ens.filter((pl.col("country") == "BBB") & (pl.col("question") == "Q2")).is_empty()


def test_a_model_named_ensemble_is_refused() -> None:
    with pytest.raises(DataError, match="rename it"):
        ensemble_population(_population(("ensemble", "other")))

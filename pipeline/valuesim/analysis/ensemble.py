"""The model ensemble of paper Figure 11: the mean of the models' predicted distributions.

For every (method, country, question) that all models answered, the ensemble's
distribution is the equal-weight mean of the models' population distributions (raw,
calibrated and plain-scaled each averaged on their own), scored against the humans
like any model under the name ``ensemble``. It exists only when two or more models
ran: with one model it would be that model again.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from valuesim.errors import DataError

ENSEMBLE = "ensemble"
PROBS = ("probs_raw", "probs_cal", "probs_plain")


def ensemble_population(population: pl.DataFrame) -> pl.DataFrame:
    """Rows of model ``ensemble`` in ``population``'s schema (empty with fewer than two
    models). A (method, country, question) cell missing from any model is left out,
    so the ensemble never averages over a different set of models per cell; its
    temperatures are null (it is not fitted)."""
    models = sorted(set(population["model"].to_list()))
    if len(models) < 2:
        return population.head(0)
    if ENSEMBLE in models:
        raise DataError(f"a model is named {ENSEMBLE!r}, the name the report gives the model "
                        "ensemble; rename it in params.yaml models and simulate.models")
    keys = ["method", "country", "question"]
    complete = (population.group_by(keys).agg(pl.col("model").n_unique().alias("n"))
                .filter(pl.col("n") == len(models)).drop("n"))
    rows = population.join(complete, on=keys, how="semi").sort(["model", *keys])
    out = rows.group_by(keys, maintain_order=True).agg(pl.col("codes").first(), *(pl.col(c) for c in PROBS))
    # every model's list has the question's codes, so the lists stack row-wise
    mean = {c: [np.mean(np.asarray(v, dtype=np.float64), axis=0).tolist() for v in out[c].to_list()]
            for c in PROBS}
    out = out.with_columns(*(pl.Series(c, mean[c], dtype=pl.List(pl.Float64)) for c in PROBS))
    out = out.with_columns(pl.lit(ENSEMBLE).alias("model"))
    for col, dtype in population.schema.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=dtype).alias(col))
    return out.select(population.columns).cast(dict(population.schema)).sort(["model", *keys])  # type: ignore[arg-type]

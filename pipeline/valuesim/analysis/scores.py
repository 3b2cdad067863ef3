"""Per-cell scores and their aggregates (the evaluate stage's tables and metrics.json)."""

from __future__ import annotations

import numpy as np
import polars as pl

from valuesim import metrics
from valuesim.errors import DataError

SCORE_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "mae": pl.Float64, "mae_cal": pl.Float64, "wasserstein": pl.Float64,
    "wasserstein_cal": pl.Float64, "nvar": pl.Float64, "nvar_cal": pl.Float64,
    "nvar_human": pl.Float64, "temperature": pl.Float64,
}


def score_cells(population: pl.DataFrame, human: pl.DataFrame) -> pl.DataFrame:
    """One row per (model, method, country, question) of data/calibrated/population.

    ``mae`` is the absolute error of the mean / range (its mean over questions is
    the paper's MAE); ``nvar*`` the normalized variances; ``*_cal`` after calibration.
    """
    if population.is_empty():
        raise DataError("data/calibrated/population.parquet is empty; run `dvc repro calibrate`")
    frames = []
    for (_question,), grp in population.group_by(["question"], maintain_order=True):
        codes, raw = metrics.dense(grp, "probs_raw")
        _, cal = metrics.dense(grp, "probs_cal")
        values = np.asarray(codes, dtype=np.float64)
        hum = metrics.human_arrays(human, grp.select("country", "question"), codes)
        frames.append(grp.select("model", "method", "country", "question", "temperature").with_columns(
            pl.Series("mae", metrics.abs_error(raw, hum, values)),
            pl.Series("mae_cal", metrics.abs_error(cal, hum, values)),
            pl.Series("wasserstein", metrics.wasserstein(raw, hum, values)),
            pl.Series("wasserstein_cal", metrics.wasserstein(cal, hum, values)),
            pl.Series("nvar", metrics.normalized_variance(raw, values)),
            pl.Series("nvar_cal", metrics.normalized_variance(cal, values)),
            pl.Series("nvar_human", metrics.normalized_variance(hum, values)),
        ))
    out = pl.concat(frames).select(list(SCORE_SCHEMA))
    return out.sort(["model", "method", "country", "question"])


def by_country(cells: pl.DataFrame) -> pl.DataFrame:
    """Mean over questions per (model, method, country)."""
    return cells.group_by(["model", "method", "country"]).agg(
        pl.col("mae").mean(), pl.col("mae_cal").mean(), pl.col("wasserstein").mean(),
        pl.col("wasserstein_cal").mean(), pl.col("nvar").mean(), pl.col("nvar_cal").mean(),
        pl.col("nvar_human").mean(), pl.len().alias("n_questions"),
    ).sort(["model", "method", "country"])


def summary(cells: pl.DataFrame, n_resamples: int, seed: int) -> pl.DataFrame:
    """Per (model, method): the means over all cells and a bootstrap 95% CI of the MAE.

    The MAE is averaged per country first and then over countries, as in the paper
    (every country weighs the same whatever its number of kept questions); the CI
    resamples the per-country MAEs.
    """
    rows = []
    countries = by_country(cells)
    for (model, method), grp in countries.group_by(["model", "method"], maintain_order=True):
        lo, hi = metrics.bootstrap_ci(grp["mae"].to_numpy(), n_resamples, seed)
        rows.append({
            "model": model, "method": method, "mae": grp["mae"].mean(), "mae_lo": lo, "mae_hi": hi,
            "mae_cal": grp["mae_cal"].mean(), "wasserstein": grp["wasserstein"].mean(),
            "wasserstein_cal": grp["wasserstein_cal"].mean(), "nvar": grp["nvar"].mean(),
            "nvar_cal": grp["nvar_cal"].mean(), "nvar_human": grp["nvar_human"].mean(),
            "n_countries": grp.height,
        })
    return pl.DataFrame(rows).sort(["model", "method"])


def _r(x: object) -> float:
    return round(float(x), 5)  # type: ignore[arg-type]


def metrics_json(summary_frame: pl.DataFrame, countries: pl.DataFrame) -> dict[str, object]:
    """reports/metrics.json: short, stable keys so `dvc exp show` columns read well.

    {"mae": {"<model>/<method>": x}, "mae_cal": ..., "wasserstein": ...,
     "wasserstein_cal": ..., "nvar": ..., "nvar_cal": ..., "nvar_human": x,
     "by_country": {"<model>/<method>": {"<ISO3>": {"mae": x, "wasserstein": x}}}}
    """
    out: dict[str, object] = {}
    for key in ("mae", "mae_cal", "wasserstein", "wasserstein_cal", "nvar", "nvar_cal"):
        out[key] = {
            f"{m}/{k}": _r(v) for m, k, v in summary_frame.select("model", "method", key).iter_rows()
        }
    out["nvar_human"] = _r(countries["nvar_human"].mean()) if countries.height else None
    by: dict[str, dict[str, dict[str, float]]] = {}
    for model, method, country, mae, w in countries.select(
        "model", "method", "country", "mae", "wasserstein_cal"
    ).iter_rows():
        by.setdefault(f"{model}/{method}", {})[country] = {"mae": _r(mae), "wasserstein_cal": _r(w)}
    out["by_country"] = by
    return out


def wilcoxon_table(cells: pl.DataFrame) -> pl.DataFrame:
    return metrics.wilcoxon_methods(
        cells.select("model", "country", "method", "question", pl.col("mae").alias("value"))
    )


def method_tests(cells: pl.DataFrame) -> pl.DataFrame:
    """Mann-Whitney U between methods per model over all (country, question) errors, BH-corrected."""
    frames = []
    for (model,), grp in cells.group_by(["model"], maintain_order=True):
        groups = {m: g["mae"].to_numpy() for (m,), g in grp.group_by(["method"])}
        frames.append(metrics.mann_whitney_bh(groups).with_columns(pl.lit(model).alias("model")))
    return pl.concat(frames) if frames else pl.DataFrame()

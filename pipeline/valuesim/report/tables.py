"""The tables of the study report, built from the evaluate and calibrate outputs.

Pure frame code: the report stage reads the inputs, these shape them for display,
and ``valuesim.report.html_page.table`` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from valuesim.analysis.references import spread
from valuesim.config import Params
from valuesim.llm.api_support import redact_url


def results_table(summary: pl.DataFrame, references: pl.DataFrame) -> pl.DataFrame:
    """The report's main table: every (model, method), then the reference rows."""
    def pm(mean: str, sd: str) -> pl.Expr:
        return pl.when(pl.col(mean).is_not_null()).then(
            pl.format("{} ± {}", pl.col(mean).round(3), pl.col(sd).round(3))).otherwise(pl.lit(""))

    methods = summary.select(
        "model", "method", "answer_rule",
        pl.col("coverage_mean").alias("coverage"), pl.col("coverage_p5").alias("coverage p5"),
        pl.col("mae"), pl.col("mae_lo"), pl.col("mae_hi"),
        pl.col("n_personas").cast(pl.Utf8).fill_null("").alias("N"),
        pm("floor_mae", "floor_mae_sd").alias("floor MAE"),
        "wasserstein", "wasserstein_cal", "mae_plain", "wasserstein_plain",
        "nvar", "nvar_cal", "nvar_human", "n_countries",
    )
    refs = references.select(
        pl.lit("reference").alias("model"), "method", pl.lit("").alias("answer_rule"),
        pl.lit(None, dtype=pl.Float64).alias("coverage"), pl.lit(None, dtype=pl.Float64).alias("coverage p5"),
        "mae", "mae_lo", "mae_hi", pl.lit("").alias("N"), pl.lit("").alias("floor MAE"),
        "wasserstein", "wasserstein_cal", pl.lit(None, dtype=pl.Float64).alias("mae_plain"),
        pl.lit(None, dtype=pl.Float64).alias("wasserstein_plain"), "nvar", "nvar_cal", "nvar_human",
        "n_countries",
    )
    return pl.concat([methods, refs.cast(methods.schema)])  # type: ignore[arg-type]


def floor_table(floor: pl.DataFrame, split_half: dict | None) -> pl.DataFrame:
    """Sampling floor per n (mean over countries per resample, then over resamples)."""
    rows = spread(floor, ["n"]).select(
        pl.format("sampling floor, n = {}", pl.col("n")).alias("reference"),
        "mae", "mae_sd", "mae_lo", "mae_hi", "wasserstein", "wasserstein_sd",
    )
    if split_half:
        rows = pl.concat([rows, pl.DataFrame([{
            "reference": "human split-half", "mae": split_half["mae"], "mae_sd": split_half["mae_sd"],
            "mae_lo": None, "mae_hi": None, "wasserstein": split_half["wasserstein"],
            "wasserstein_sd": split_half["wasserstein_sd"]}], schema=rows.schema)])
    return rows


def temperature_table(temperatures: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """One row per run of temperatures.json: the fitted temperatures, plain next to
    mean-preserving."""
    return pl.DataFrame([
        {"run": k, "T (all questions)": v["overall"], "T (LOQO median)": v["loqo_median"],
         "plain T (LOQO median)": (v.get("plain") or {}).get("loqo_median")}
        for k, v in temperatures.items()
    ])


def shown_params(params: Params) -> dict:
    """The configuration as the report prints it, with credentials removed from URLs."""
    shown = params.model_dump(mode="json")
    if not shown["data"].get("new_questions"):
        # unset (the default): the page shows the configuration as before the setting existed
        shown["data"].pop("new_questions", None)
    for spec in shown.get("models", {}).values():
        url = spec.get("base_url")
        if url:  # one server, or a fleet's list of them
            spec["base_url"] = [redact_url(u) for u in url] if isinstance(url, list) else redact_url(url)
    return shown


def curve_runs(sample_sizes: pl.DataFrame) -> pl.DataFrame:
    """The sample-size curve rows of the runs with more than one size (a curve to draw)."""
    multi = sample_sizes.group_by(["model", "method"]).agg(pl.col("n").n_unique()).filter(pl.col("n") > 1)
    return sample_sizes.join(multi.select("model", "method"), on=["model", "method"])

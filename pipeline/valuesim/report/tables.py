"""The tables of the study report, built from the evaluate and calibrate outputs.

Pure frame code: the report stage reads the inputs, these shape them for display,
and ``valuesim.report.html_page.table`` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from valuesim.analysis.references import SPLIT_HALF_FACTOR, human_sampling_noise, spread
from valuesim.config import Params
from valuesim.urls import redact_url


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
        pm("persona_floor_mae", "persona_floor_mae_sd").alias("persona-information floor MAE"),
        pm("answer_floor_mae", "answer_floor_mae_sd").alias("actual-answer floor MAE"),
        "wasserstein", "wasserstein_cal", "mae_plain", "wasserstein_plain",
        "nvar", "nvar_cal", "nvar_human", "n_countries",
    )
    refs = references.select(
        pl.lit("reference").alias("model"), "method", pl.lit("").alias("answer_rule"),
        pl.lit(None, dtype=pl.Float64).alias("coverage"), pl.lit(None, dtype=pl.Float64).alias("coverage p5"),
        "mae", "mae_lo", "mae_hi", pl.lit("").alias("N"), pl.lit("").alias("persona-information floor MAE"),
        pl.lit("").alias("actual-answer floor MAE"),
        "wasserstein", "wasserstein_cal", pl.lit(None, dtype=pl.Float64).alias("mae_plain"),
        pl.lit(None, dtype=pl.Float64).alias("wasserstein_plain"), "nvar", "nvar_cal", "nvar_human",
        "n_countries",
    )
    return pl.concat([methods, refs.cast(methods.schema)])  # type: ignore[arg-type]


def paired_tests_table(paired: pl.DataFrame) -> pl.DataFrame:
    """paired_tests.parquet as the report shows it: one row per comparison, a - b."""
    return paired.select(
        "model", pl.col("a").alias("method a"), pl.col("b").alias("method or reference b"),
        pl.col("n_questions").alias("questions"), pl.col("n_cells").alias("cells"),
        pl.col("diff").alias("MAE a - b"), pl.col("ci_lo").alias("95% CI lo"), pl.col("ci_hi").alias("95% CI hi"),
        *(pl.col(c).map_elements(lambda v: f"{v:.2g}", return_dtype=pl.Utf8).alias(c) for c in ("p", "p_bh")),
    )


def floor_table(floor: pl.DataFrame, split_half: dict | None, persona: pl.DataFrame | None = None) -> pl.DataFrame:
    """The floors per n (mean over countries per resample, then over resamples): the
    persona-information floor of each persona method (``persona``: method, n, repeat,
    country, mae), the actual-answer floor (``floor``), then the human split-half and
    the sampling noise it implies (split-half / SPLIT_HALF_FACTOR)."""
    schema = {"reference": pl.Utf8, "mae": pl.Float64, "mae_sd": pl.Float64, "mae_lo": pl.Float64,
              "mae_hi": pl.Float64, "wasserstein": pl.Float64, "wasserstein_sd": pl.Float64}
    parts = []
    if persona is not None and persona.height:
        parts.append(spread(persona, ["method", "n"]).select(
            pl.format("persona-information floor ({}), n = {}", pl.col("method"), pl.col("n")).alias("reference"),
            "mae", "mae_sd", "mae_lo", "mae_hi",
            pl.lit(None, dtype=pl.Float64).alias("wasserstein"), pl.lit(None, dtype=pl.Float64).alias("wasserstein_sd"),
        ).cast(schema))  # type: ignore[arg-type]
    parts.append(spread(floor, ["n"]).select(
        pl.format("actual-answer floor (n respondents' own answers), n = {}", pl.col("n")).alias("reference"),
        "mae", "mae_sd", "mae_lo", "mae_hi", "wasserstein", "wasserstein_sd",
    ).cast(schema))  # type: ignore[arg-type]
    if split_half:
        noise = human_sampling_noise(split_half)
        parts.append(pl.DataFrame([
            {"reference": "human split-half (two halves against each other)", "mae": split_half["mae"],
             "mae_sd": split_half["mae_sd"], "mae_lo": None, "mae_hi": None,
             "wasserstein": split_half["wasserstein"], "wasserstein_sd": split_half["wasserstein_sd"]},
            {"reference": f"human sampling noise (split-half / {SPLIT_HALF_FACTOR:g}: a perfect predictor "
                          "against the full sample)", "mae": noise["mae"], "mae_sd": noise["mae_sd"],
             "mae_lo": None, "mae_hi": None, "wasserstein": noise["wasserstein"],
             "wasserstein_sd": noise["wasserstein_sd"]},
        ], schema=schema))
    return pl.concat(parts)


def _identified(entry: Mapping[str, Any]) -> str:
    """temperatures.json's verdict on one fit, in words ("" for a file without it)."""
    if "edge" not in entry:
        return ""
    return {None: "yes", "infinity": "no: lowest at T = ∞", "lower": "no: lowest grid point (a bound)"}.get(
        entry["edge"], str(entry["edge"]))


def temperature_table(temperatures: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """One row per run of temperatures.json: the fitted temperatures (inf: the
    T -> infinity limit did best) and whether the objective identifies T, plain next to
    mean-preserving."""
    return pl.DataFrame([
        {"run": k, "T (all questions)": float(v["overall"]), "T (LOQO median)": float(v["loqo_median"]),
         "T identified": _identified(v),
         "plain T (LOQO median)": (v.get("plain") or {}).get("loqo_median"),
         "plain T identified": _identified(v.get("plain") or {})}
        for k, v in temperatures.items()
    ], schema={"run": pl.Utf8, "T (all questions)": pl.Float64, "T (LOQO median)": pl.Float64,
               "T identified": pl.Utf8, "plain T (LOQO median)": pl.Float64, "plain T identified": pl.Utf8})


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

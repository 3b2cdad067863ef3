"""The numbers of the report's section "How far to trust a new answer", from
``data/eval/intervals.parquet``: which rows it shows, the coverage table, and the
sentences computed from it (the persona bootstrap's coverage, "is the model worth
asking?"). Pure frame code; ``intervals_section`` writes the HTML and
``intervals_figures`` draws from the same rows.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from valuesim.methods import method_label

LEVELS = (0.8, 0.9, 0.95)
LEVEL = 0.9  # the level the references, the widths figure and the sentences compare at
REFERENCE = "reference"  # intervals.parquet's model for the model-free references
REFERENCES = ("midpoint", "other_countries")
PERSONA = "persona_bootstrap"
# one-point scale items the table converts the normalized width to: width_norm * range
SCALES = (("1-4", 3), ("1-10", 9))


def run_name(model: str, method: str, n_models: int) -> str:
    """How the section names a run: the method's label, the model too when several ran."""
    if model == REFERENCE:
        return f"reference: {method.replace('_', ' ')}"
    return method_label(method) if n_models == 1 else f"{model}/{method_label(method)}"


def shown_rows(intervals: pl.DataFrame) -> pl.DataFrame:
    """The rows the section reads: the calibrated kind where a variant has it (the
    mean-preserving calibration does not move means, so raw gives the same intervals)
    and each run's own number of personas (the largest N fitted)."""
    rank = pl.when(pl.col("kind") == "calibrated").then(0).otherwise(1)
    key = ["model", "method", "variant"]
    return (intervals.with_columns(rank.alias("_rank"))
            .filter(pl.col("_rank") == pl.col("_rank").min().over(key))
            .with_columns(pl.col("n_personas").fill_null(0).alias("_n"))
            .filter(pl.col("_n") == pl.col("_n").max().over(["model", "method"]))
            .drop("_rank", "_n"))


def _overall(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.filter((pl.col("group_type") == "overall") & (pl.col("group") == "all"))


def runs_of(rows: pl.DataFrame) -> list[tuple[str, str]]:
    """The model runs (not the references), by model and method name."""
    runs = rows.filter(pl.col("model") != REFERENCE).select("model", "method").unique()
    return sorted(runs.rows())


def default_variant(rows: pl.DataFrame, model: str, method: str) -> str | None:
    """The variant the evaluate stage chose for (model, method); None when it has none."""
    chosen = rows.filter((pl.col("model") == model) & (pl.col("method") == method)
                         & pl.col("default") & (pl.col("variant") != PERSONA))
    return None if chosen.is_empty() else str(chosen["variant"].sort()[0])


def _one(rows: pl.DataFrame, model: str, method: str, variant: str, level: float,
         validation: str) -> dict[str, Any] | None:
    hit = _overall(rows).filter(
        (pl.col("model") == model) & (pl.col("method") == method) & (pl.col("variant") == variant)
        & ((pl.col("level") - level).abs() < 1e-9) & (pl.col("validation") == validation))
    return None if hit.is_empty() else hit.row(0, named=True)


def _cov(row: dict[str, Any] | None) -> str:
    if row is None or row["n_cells"] == 0:
        return ""
    return f"{row['coverage']:.3f} [{row['coverage_lo']:.3f}, {row['coverage_hi']:.3f}]"


def _table_row(rows: pl.DataFrame, model: str, method: str, variant: str, level: float,
               n_models: int, validation: str = "loqo") -> dict[str, Any] | None:
    loqo = _one(rows, model, method, variant, level, validation)
    if loqo is None:
        return None
    lobo = _one(rows, model, method, variant, level, "lobo") if validation == "loqo" else None
    w = loqo["width_norm"]
    label = "persona bootstrap" if variant == PERSONA else variant + (" (default)" if loqo["default"] else "")
    return {"run": run_name(model, method, n_models), "interval": label, "N": None if model == REFERENCE else loqo["n_personas"],
            "level": float(level), "cells": int(loqo["n_cells"]), "LOQO coverage": _cov(loqo),
            "LOBO coverage": _cov(lobo), "all countries at once (LOQO)": loqo["simultaneous"],
            "width / range": w,
            **{f"width, {name} item": None if w is None else w * span for name, span in SCALES}}


def coverage_table(rows: pl.DataFrame) -> pl.DataFrame:
    """The section's table (``rows``: :func:`shown_rows`): per run the default variant
    at every level and the persona bootstrap at 95%, then each reference's default
    variant at :data:`LEVEL`."""
    runs = runs_of(rows)
    n_models = len({m for m, _ in runs})
    out: list[dict[str, Any]] = []
    for model, method in runs:
        variant = default_variant(rows, model, method)
        if variant is not None:
            out += [r for lv in LEVELS if (r := _table_row(rows, model, method, variant, lv, n_models))]
        persona = _table_row(rows, model, method, PERSONA, 0.95, n_models, validation="none")
        if persona is not None:
            out.append(persona)
    for ref in REFERENCES:
        variant = default_variant(rows, REFERENCE, ref)
        if variant is not None and (r := _table_row(rows, REFERENCE, ref, variant, LEVEL, n_models)):
            out.append(r)
    schema = {"run": pl.Utf8, "interval": pl.Utf8, "N": pl.Int64, "level": pl.Float64,
              "cells": pl.Int64, "LOQO coverage": pl.Utf8, "LOBO coverage": pl.Utf8,
              "all countries at once (LOQO)": pl.Float64, "width / range": pl.Float64,
              **{f"width, {name} item": pl.Float64 for name, _ in SCALES}}
    return pl.DataFrame(out, schema=schema, orient="row")


def _width(rows: pl.DataFrame, model: str, method: str) -> tuple[float, dict[str, Any]] | None:
    variant = default_variant(rows, model, method)
    row = None if variant is None else _one(rows, model, method, variant, LEVEL, "loqo")
    if row is None or row["width_norm"] is None:
        return None
    return float(row["width_norm"]), row


def worth_asking(rows: pl.DataFrame) -> list[str]:
    """One sentence per run: is its default interval at :data:`LEVEL` narrower than the
    other-countries reference's (and the midpoint's)? Computed from ``rows``."""
    runs = runs_of(rows)
    n_models = len({m for m, _ in runs})
    other = _width(rows, REFERENCE, "other_countries")
    middle = _width(rows, REFERENCE, "midpoint")
    said = []
    for model, method in runs:
        mine = _width(rows, model, method)
        name = run_name(model, method, n_models)
        if mine is None:
            said.append(f"{name}: no interval at {LEVEL:.0%} to compare (no default variant in "
                        "intervals.parquet).")
            continue
        w, row = mine
        text = (f"{name}: its {LEVEL:.0%} interval ({row['variant']}) is {w:.3f} of the range wide "
                f"(±{w * 1.5:.2f} points on a 1-4 item), with LOQO coverage {row['coverage']:.3f}")
        if row["coverage_hi"] < LEVEL:
            text += f", below the nominal {LEVEL:.2f} (its 95% CI ends at {row['coverage_hi']:.3f})"
        if other is None:
            text += "; there is no other-countries reference in intervals.parquet to compare with."
        elif w < other[0]:
            text += (f". That is narrower than the other-countries reference's {other[0]:.3f}: the "
                     "model places a country's answer more tightly than the other countries' human "
                     "answers to the same question would, so it is worth asking.")
        else:
            text += (f". That is not narrower than the other-countries reference's {other[0]:.3f}: "
                     "where people in other countries have answered the question, their answers "
                     "place this country at least as tightly as the model does.")
        if middle is not None and w >= middle[0]:
            text += (f" It is not narrower than the scale midpoint's {middle[0]:.3f} either, which "
                     "needs no data at all: the model is not worth asking for a country's mean.")
        elif middle is not None:
            text += f" It is narrower than the scale midpoint's {middle[0]:.3f}, which needs no data."
        said.append(text)
    return said


def persona_sentence(rows: pl.DataFrame) -> str:
    """The persona bootstrap's measured coverage of the human mean, from the table."""
    runs = runs_of(rows)
    n_models = len({m for m, _ in runs})
    boot = _overall(rows).filter((pl.col("variant") == PERSONA) & (pl.col("model") != REFERENCE)
                                 ).sort("model", "method")
    if boot.is_empty():
        return "intervals.parquet has no persona-bootstrap rows, so its coverage is not shown here."
    covered, cells = int(boot["n_covered"].sum()), int(boot["n_cells"].sum())
    share = covered / cells if cells else float("nan")
    level = float(boot["level"][0])
    per_run = "; ".join(
        f"{run_name(r['model'], r['method'], n_models)} {r['n_covered']} of {r['n_cells']}, width "
        f"{r['width_norm']:.3f}" for r in boot.iter_rows(named=True))
    return (f"On this study's questions it covers the human mean in {covered} of {cells} cells "
            f"({share:.1%}) at nominal {level:.0%} ({per_run}; widths as a share of the range).")

"""The evaluate stage's computation: every score, reference, floor, test and curve.

Pure: it takes the tables the stage read and returns the tables it writes, so the
whole evaluation can be run and checked without files. Every method is scored next
to the references of :mod:`valuesim.analysis.references` (midpoint, uniform, other
countries; sampling floor, human split-half), computed from the human data without
model calls.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from valuesim.analysis import curves, interval_cells, interval_tables, references, scores
from valuesim.analysis.blocks import build_blocks
from valuesim.analysis.ensemble import ensemble_population
from valuesim.config import AnalysisParams

# Figure 9's temperatures: log-spaced around the default T = 1 (which is included).
CURVE_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.1, 10.0, 13))

Run = tuple[str, str]  # (model, method)


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate stage writes: ``tables`` by file name under data/eval/,
    ``plots`` by file name under reports/plots/, the DVC metrics, and ``json`` files
    by name under data/eval/."""

    tables: dict[str, pl.DataFrame]
    plots: dict[str, pl.DataFrame]
    metrics: dict[str, Any]
    json: dict[str, Any] = field(default_factory=dict)


def personas_per_country(answers: pl.DataFrame) -> int:
    """The run's N: personas per country that contribute an answer (the largest, where
    a country has fewer)."""
    usable = answers.filter(pl.col("flag").fill_null("") == "") if "flag" in answers.columns else answers
    counts = usable.group_by("country").agg(pl.col("persona_id").n_unique())["persona_id"]
    return int(counts.max() or 0)  # type: ignore[arg-type]


def run_floors(floor_spread: pl.DataFrame, run_n: Mapping[Run, int]) -> dict[str, dict[str, float]]:
    """The sampling floor at each persona run's own N, keyed ``model/method``."""
    return {
        f"{model}/{method}": {"n": n, **floor_spread.filter(pl.col("n") == n)
                              .select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)}
        for (model, method), n in run_n.items()
    }


def floor_columns(floors: Mapping[str, Mapping[str, float]]) -> pl.DataFrame:
    """The floors as columns to join onto the method summary."""
    return pl.DataFrame(
        [{"model": k.split("/", 1)[0], "method": k.split("/", 1)[1], "n_personas": v["n"],
          "floor_mae": v["mae"], "floor_mae_sd": v["mae_sd"], "floor_wasserstein": v["wasserstein"]}
         for k, v in floors.items()],
        schema={"model": pl.Utf8, "method": pl.Utf8, "n_personas": pl.Int64, "floor_mae": pl.Float64,
                "floor_mae_sd": pl.Float64, "floor_wasserstein": pl.Float64},
    )


def prediction_intervals(
    *, answers: Mapping[Run, pl.DataFrame], human: pl.DataFrame, kept: Sequence[str],
    respondents: pl.DataFrame, keys: pl.DataFrame, persona_methods: Collection[str],
    an: AnalysisParams, persona_seed: int, batteries: Mapping[str, str] | None = None,
) -> interval_tables.IntervalTables:
    """Conformal prediction intervals (:mod:`valuesim.analysis.conformal`) of every run
    and of the midpoint and other-countries references, on the (country, question)
    ``keys`` the methods are scored on.

    A run's cells are made from its persona-level answers as ``ask`` makes them: its N
    and each smaller ``analysis.sample_sizes`` n that ``ask --n n`` would draw with
    ``persona_seed`` from the run's personas. Raw and calibrated cells are equal (the
    calibration preserves every persona's mean); both are written.
    """
    frames, scales = [], {}
    for (model, method), frame in answers.items():
        persona = method in persona_methods
        cells = interval_cells.run_cells(
            model, method, frame.join(keys, on=["country", "question"], how="semi"), human, kept, respondents,
            persona_method=persona, run_n=personas_per_country(frame) if persona else 1,
            sizes=an.sample_sizes, persona_seed=persona_seed, bootstrap=an.bootstrap, seed=an.seed,
            batteries=batteries,
        )
        frames.append(cells)
        for q, codes in frame.group_by("question").agg(pl.col("codes").first()).iter_rows():
            scales.setdefault(str(q), list(codes))
    countries = sorted(set(keys["country"].to_list()))
    hum = human.filter(pl.col("question").is_in(list(kept)) & pl.col("country").is_in(countries))
    # the references' own predictions (references.reference_cells scores them, keeping no means)
    predictions = {
        "midpoint": references.constant_reference(hum, "midpoint"),
        "other_countries": references.other_countries_reference(respondents, hum, countries, kept),
    }
    frames.append(interval_cells.reference_interval_cells(predictions, hum, keys, scales, batteries))
    return interval_tables.interval_tables(pl.concat(frames))


def plot_tables(
    all_countries: pl.DataFrame, sample_sizes: pl.DataFrame, floor_spread: pl.DataFrame,
    temperature: pl.DataFrame, sizes: Sequence[int],
) -> dict[str, pl.DataFrame]:
    """DVC plot data: flat tables with a "run" column (model/method) to group lines by."""
    run_col = pl.concat_str(["model", "method"], separator="/").alias("run")
    return {
        "mae_by_country.csv": all_countries.select(run_col, "country", "mae", "wasserstein_cal"),
        "sample_size.csv": pl.concat([
            sample_sizes.group_by(["model", "method", "n"]).agg(pl.col("mae").mean())
            .sort(["model", "method", "n"]).select(run_col, "n", "mae"),
            floor_spread.filter(pl.col("n").is_in(sizes))
            .select(pl.lit("reference/sampling_floor").alias("run"), "n", "mae"),
        ]),
        "temperature.csv": temperature.sort(["model", "method", "scaling", "temperature"]).select(
            pl.concat_str(["model", "method", "scaling"], separator="/").alias("run"),
            "temperature", "mae", "wasserstein",
        ),
    }


def evaluate(
    *, population: pl.DataFrame, human: pl.DataFrame, kept: Sequence[str], respondents: pl.DataFrame,
    answers: Mapping[Run, pl.DataFrame], persona_methods: Collection[str], an: AnalysisParams,
    persona_seed: int = 0, batteries: Mapping[str, str] | None = None,
) -> Evaluation:
    """Scores of the calibrated population, curves of the persona-level ``answers``,
    references and floors from the human data, and prediction intervals;
    ``persona_methods`` are the methods whose runs have a persona count N (their floor
    is taken at that N); ``persona_seed`` is ``personas.seed`` (the draws of ``ask``);
    ``batteries``: the bank's explicit ``battery`` of an item, where it sets one."""
    cells = scores.score_cells(population, human)
    countries = scores.by_country(cells)
    # Figure 11's ensemble (two or more models): model "ensemble" rows in by_country,
    # per_question and wilcoxon only; cells, summary, metrics and plots keep the models
    ens = ensemble_population(population)
    scored = pl.concat([cells, scores.score_cells(ens, human)]) if ens.height else cells
    selected = sorted(set(cells["country"].to_list()))

    sample_frames, temp_frames = [], []
    run_n = {key: personas_per_country(a) for key, a in answers.items() if key[1] in persona_methods}
    for (model, method), frame in answers.items():
        blocks = build_blocks(frame, human, list(kept))
        sample_frames.append(
            curves.sample_size_curve(model, method, blocks, an.sample_sizes, an.subsample_repeats, an.seed)
        )
        temp_frames.append(
            curves.temperature_curve(model, method, blocks, CURVE_TEMPERATURES, an.bootstrap, an.seed)
        )
    sample_sizes = pl.concat(sample_frames)
    temperature = pl.concat(temp_frames)

    # references and floors: no model calls, the same cells as the methods
    ref_cells = references.reference_cells(human, respondents, selected, kept)
    ref_cells = ref_cells.join(cells.select("country", "question").unique(), on=["country", "question"],
                               how="semi").select(list(scores.SCORE_SCHEMA)).sort(["method", "country", "question"])
    ref_countries = scores.by_country(ref_cells)
    floor = references.sampling_floor(
        respondents, human, selected, kept, sorted({*an.sample_sizes, *run_n.values()}),
        an.subsample_repeats, an.seed,
    )
    floor_spread = references.spread(floor, ["n"])
    floors = run_floors(floor_spread, run_n)
    halves = references.split_half(respondents, human, selected, kept, an.subsample_repeats, an.seed)
    half = references.spread(halves).select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)

    coverage = scores.coverage_summary(dict(answers))
    summary = scores.summary(cells, an.bootstrap, an.seed).join(coverage, on=["model", "method"], how="left")
    summary = summary.join(floor_columns(floors), on=["model", "method"], how="left")
    ref_summary = scores.summary(ref_cells, an.bootstrap, an.seed)

    tables = {
        "cells.parquet": cells,
        "by_country.parquet": scores.by_country(scored) if ens.height else countries,
        "summary.parquet": summary,
        "reference_cells.parquet": ref_cells,
        "reference_by_country.parquet": ref_countries,
        "reference_summary.parquet": ref_summary,
        "sampling_floor.parquet": floor,
        "split_half.parquet": halves,
        "wilcoxon.parquet": scores.wilcoxon_table(scored, ref_cells),
        "mann_whitney.parquet": scores.method_tests(cells),
        "per_question.parquet": curves.per_question(scored),
        "sample_size.parquet": sample_sizes,
        "temperature.parquet": temperature,
    }
    intervals = prediction_intervals(
        answers=answers, human=human, kept=kept, respondents=respondents,
        keys=cells.select("country", "question").unique(), persona_methods=persona_methods, an=an,
        persona_seed=persona_seed, batteries=batteries,
    )
    tables["intervals.parquet"] = intervals.intervals
    tables["interval_fits.parquet"] = intervals.fits
    all_countries = pl.concat([countries, ref_countries])
    metrics = scores.metrics_json(pl.concat([summary.select(ref_summary.columns), ref_summary]),
                                  all_countries, coverage, floors, half)
    metrics["interval"] = intervals.metrics
    plots = plot_tables(all_countries, sample_sizes, floor_spread, temperature, an.sample_sizes)
    return Evaluation(tables=tables, plots=plots, metrics=metrics,
                      json={"interval_choice.json": intervals.choice})

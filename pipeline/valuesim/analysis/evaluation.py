"""The evaluate stage's computation: every score, reference, floor, test and curve.

Pure: it takes the tables the stage read and returns the tables it writes, so the
whole evaluation can be run and checked without files. Every method is scored next
to the references of :mod:`valuesim.analysis.references` (midpoint, uniform, other
countries; the actual-answer floor, the persona-information floor, human split-half
and the sampling noise it implies), computed from the human data without model calls.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from valuesim.analysis import (
    curves,
    interval_cells,
    interval_tables,
    paired,
    references,
    scores,
    unordered_scores,
)
from valuesim.analysis.blocks import build_blocks
from valuesim.analysis.ensemble import ensemble_population
from valuesim.analysis.persona_information import PersonaFeatures, persona_expectations
from valuesim.config import AnalysisParams
from valuesim.survey.bank import Item

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
    """The actual-answer floor at each persona run's own N, keyed ``model/method``."""
    return {
        f"{model}/{method}": {"n": n, **floor_spread.filter(pl.col("n") == n)
                              .select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)}
        for (model, method), n in run_n.items()
    }


def run_persona_floors(persona_spread: pl.DataFrame, run_n: Mapping[Run, int]) -> dict[str, dict[str, float]]:
    """The persona-information floor of each persona run's method at the run's N,
    keyed ``model/method`` (runs whose method has no floor are left out)."""
    out = {}
    for (model, method), n in run_n.items():
        row = persona_spread.filter((pl.col("method") == method) & (pl.col("n") == n))
        if row.height:
            out[f"{model}/{method}"] = {"n": n, **row.select("mae", "mae_sd").row(0, named=True)}
    return out


FLOOR_COLUMNS = {"model": pl.Utf8, "method": pl.Utf8, "n_personas": pl.Int64, "answer_floor_mae": pl.Float64,
                 "answer_floor_mae_sd": pl.Float64, "answer_floor_wasserstein": pl.Float64,
                 "persona_floor_mae": pl.Float64, "persona_floor_mae_sd": pl.Float64}


def floor_columns(floors: Mapping[str, Mapping[str, float]],
                  persona: Mapping[str, Mapping[str, float]] | None = None) -> pl.DataFrame:
    """The floors as columns to join onto the method summary: ``answer_floor_*`` (the
    actual-answer floor) and ``persona_floor_*`` (the persona-information floor, null
    where the run has none)."""
    persona = persona or {}
    return pl.DataFrame(
        [{"model": k.split("/", 1)[0], "method": k.split("/", 1)[1], "n_personas": v["n"],
          "answer_floor_mae": v["mae"], "answer_floor_mae_sd": v["mae_sd"],
          "answer_floor_wasserstein": v["wasserstein"],
          "persona_floor_mae": (persona.get(k) or {}).get("mae"),
          "persona_floor_mae_sd": (persona.get(k) or {}).get("mae_sd")}
         for k, v in floors.items()],
        schema=FLOOR_COLUMNS,
    )


@dataclass(frozen=True)
class Floors:
    """The noise floors of :mod:`valuesim.analysis.references`, computed once."""

    actual: pl.DataFrame  # actual_answer_floor.parquet: n, repeat, country, mae, wasserstein
    persona: pl.DataFrame  # persona_information_floor.parquet: method, n, repeat, country, mae
    halves: pl.DataFrame  # split_half.parquet: repeat, country, mae, wasserstein
    actual_spread: pl.DataFrame  # by n
    persona_spread: pl.DataFrame  # by method, n
    runs: dict[str, dict[str, float]]  # the actual-answer floor at each persona run's N
    persona_runs: dict[str, dict[str, float]]  # the persona-information floor at each persona run's N, and
    # r2: the mean out-of-fold R-squared of E[answer | persona] over (country, question)
    half: dict[str, float]  # split-half MAE, Wasserstein and their SDs
    normal: dict[int, float]  # the actual-answer floor's normal approximation by N


PERSONA_FLOOR_SCHEMA = {"method": pl.Utf8, **references.PERSONA_FLOOR_SCHEMA}


def _mean(values: pl.Series) -> float:
    m = values.mean()
    return float(m) if m is not None else float("nan")  # type: ignore[arg-type]


def noise_floors(
    respondents: pl.DataFrame, human: pl.DataFrame, countries: Sequence[str], kept: Sequence[str],
    run_n: Mapping[Run, int], persona_features: Mapping[str, PersonaFeatures], an: AnalysisParams,
) -> Floors:
    """Every floor at each ``analysis.sample_sizes`` n and each persona run's N: the
    actual-answer floor, the persona-information floor of each persona method that has
    ``persona_features`` (one fit per distinct set of features), split-half."""
    sizes = sorted({*an.sample_sizes, *run_n.values()})
    draws = list(references.floor_draws(respondents, countries, sizes, an.subsample_repeats, an.seed))
    actual = references.actual_answer_floor(respondents, human, countries, kept, sizes, an.subsample_repeats,
                                            an.seed, draws)
    actual_spread = references.spread(actual, ["n"])
    scales = references.scale_codes(human)
    methods = sorted({m for _, m in run_n} & set(persona_features))
    fitted: dict[PersonaFeatures, tuple[pl.DataFrame, float]] = {}
    frames, r2 = [], {}
    for method in methods:
        f = persona_features[method]
        if f not in fitted:
            expected = persona_expectations(respondents, countries, kept, scales, f, an.seed)
            fitted[f] = (references.persona_information_floor(
                expected, respondents, human, countries, kept, sizes, an.subsample_repeats, an.seed, draws),
                _mean(expected.r2["r2"].drop_nans()))
        frames.append(fitted[f][0].select(pl.lit(method).alias("method"), pl.all()))
        r2[method] = fitted[f][1]
    persona = pl.concat(frames) if frames else pl.DataFrame(schema=PERSONA_FLOOR_SCHEMA)
    persona_spread = (references.spread(persona, ["method", "n"]) if persona.height
                      else pl.DataFrame(schema={"method": pl.Utf8, "n": pl.Int64, "mae": pl.Float64,
                                                "mae_sd": pl.Float64}))
    halves = references.split_half(respondents, human, countries, kept, an.subsample_repeats, an.seed)
    half = references.spread(halves).select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)
    normal = {n: references.actual_answer_floor_normal(respondents, human, countries, kept, n)
              for n in sorted(set(run_n.values()))}
    persona_runs = {k: {**v, "r2": r2[k.split("/", 1)[1]]}
                    for k, v in run_persona_floors(persona_spread, run_n).items()}
    return Floors(actual, persona, halves, actual_spread, persona_spread, run_floors(actual_spread, run_n),
                  persona_runs, half, normal)


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
    temperature: pl.DataFrame, sizes: Sequence[int], persona_spread: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """DVC plot data: flat tables with a "run" column (model/method) to group lines by."""
    run_col = pl.concat_str(["model", "method"], separator="/").alias("run")
    return {
        "mae_by_country.csv": all_countries.select(run_col, "country", "mae", "wasserstein_cal"),
        "sample_size.csv": pl.concat([
            sample_sizes.group_by(["model", "method", "n"]).agg(pl.col("mae").mean())
            .sort(["model", "method", "n"]).select(run_col, "n", "mae"),
            floor_spread.filter(pl.col("n").is_in(sizes))
            .select(pl.lit("reference/actual_answer_floor").alias("run"), "n", "mae"),
            *([] if persona_spread is None or persona_spread.is_empty() else [
                persona_spread.filter(pl.col("n").is_in(sizes)).sort(["method", "n"]).select(
                    pl.format("reference/persona_information_floor/{}", "method").alias("run"), "n", "mae")]),
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
    persona_features: Mapping[str, PersonaFeatures] | None = None,
    unordered: Mapping[str, Item] | None = None,
) -> Evaluation:
    """Scores of the calibrated population, curves of the persona-level ``answers``,
    references and floors from the human data, and prediction intervals;
    ``persona_methods`` are the methods whose runs have a persona count N (their floor
    is taken at that N); ``persona_seed`` is ``personas.seed`` (the draws of ``ask``);
    ``batteries``: the bank's explicit ``battery`` of an item, where it sets one;
    ``persona_features``: what each persona method's persona states (its
    persona-information floor; methods without are left without one); ``unordered``:
    the bank's nominal and binary items, scored apart by total variation and
    Jensen-Shannon (:mod:`valuesim.analysis.unordered_scores`) and left out of every
    mean-based score, reference, floor, test, curve and interval."""
    nominal = {q: unordered[q] for q in kept if q in (unordered or {})}
    kept = [q for q in kept if q not in nominal]
    if nominal:  # a population calibrated before types existed may hold them: never averaged
        population = population.filter(~pl.col("question").is_in(list(nominal)))
    cells = scores.score_cells(population, human)
    countries = scores.by_country(cells)
    # Figure 11's ensemble (two or more models): model "ensemble" rows in by_country,
    # per_question, wilcoxon and paired_tests only; cells, summary, metrics and plots keep the models
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
    floors = noise_floors(respondents, human, selected, kept, run_n, persona_features or {}, an)

    coverage = scores.coverage_summary(dict(answers))
    summary = scores.summary(cells, an.bootstrap, an.seed).join(coverage, on=["model", "method"], how="left")
    summary = summary.join(floor_columns(floors.runs, floors.persona_runs), on=["model", "method"], how="left")
    ref_summary = scores.summary(ref_cells, an.bootstrap, an.seed)

    tables = {
        "cells.parquet": cells,
        "by_country.parquet": scores.by_country(scored) if ens.height else countries,
        "summary.parquet": summary,
        "reference_cells.parquet": ref_cells,
        "reference_by_country.parquet": ref_countries,
        "reference_summary.parquet": ref_summary,
        "actual_answer_floor.parquet": floors.actual,
        "persona_information_floor.parquet": floors.persona,
        "split_half.parquet": floors.halves,
        "wilcoxon.parquet": scores.wilcoxon_table(scored, ref_cells),
        # the default comparison: paired, clustered by question, BH per model
        "paired_tests.parquet": paired.paired_table(scored, ref_cells, n_resamples=an.bootstrap, seed=an.seed),
        "mann_whitney.parquet": scores.method_tests(cells),  # the paper's unpaired test, labelled so
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
                                  all_countries, coverage, floors.runs, floors.half,
                                  persona_floors=floors.persona_runs, normal_floors=floors.normal)
    metrics["interval"] = intervals.metrics
    plots = plot_tables(all_countries, sample_sizes, floors.actual_spread, temperature, an.sample_sizes,
                        floors.persona_spread)
    if nominal:  # only then: a study of ordinal items writes what it wrote before
        extra, metrics["unordered"] = unordered_tables(answers, human, respondents, selected, nominal, an)
        tables.update(extra)
    return Evaluation(tables=tables, plots=plots, metrics=metrics,
                      json={"interval_choice.json": intervals.choice})


def unordered_tables(
    answers: Mapping[Run, pl.DataFrame], human: pl.DataFrame, respondents: pl.DataFrame,
    countries: Sequence[str], items: Mapping[str, Item], an: AnalysisParams,
) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The nominal and binary kept targets' tables (unordered_*.parquet) and metrics
    (metrics.json's ``unordered``): the runs and the uniform and other-countries
    references on the same (country, question) cells."""
    cells = unordered_scores.unordered_cells(answers, human, items)
    cells = cells.filter(pl.col("country").is_in(list(countries)))
    ref_cells = unordered_scores.reference_unordered_cells(
        human, respondents, countries, items, cells.select("country", "question").unique())
    summary = pl.concat([unordered_scores.summary(cells, an.bootstrap, an.seed),
                         unordered_scores.summary(ref_cells, an.bootstrap, an.seed)])
    countries_frame = pl.concat([unordered_scores.by_country(cells), unordered_scores.by_country(ref_cells)])
    tables = {
        "unordered_cells.parquet": cells,
        "unordered_reference_cells.parquet": ref_cells,
        "unordered_by_country.parquet": countries_frame,
        "unordered_summary.parquet": summary,
    }
    scored = {q: items[q] for q in items if q in set(cells["question"].to_list())}
    return tables, unordered_scores.metrics_json(summary, countries_frame, scored)

"""`valuesim stage evaluate`: scores, references, noise floors, tests and curves.

Writes data/eval/*.parquet, reports/metrics.json (DVC metrics) and the DVC plot
data under reports/plots/. Every method is scored next to the references of
``valuesim.analysis.references`` (midpoint, uniform, other countries; sampling
floor, human split-half), computed here from the human data without model calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from valuesim.analysis import curves, references, scores
from valuesim.analysis.blocks import build_blocks, read_json, read_parquet, simulated_runs
from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.paths import (
    CALIBRATED,
    EVAL,
    HUMAN_DISTRIBUTIONS,
    KEPT_QUESTIONS,
    MAP_TRANSFORM,
    METRICS,
    PLOTS,
    RESPONDENTS,
    SIMULATED,
)
from valuesim.stages._io import write_json, write_parquet

# Figure 9's temperatures: log-spaced around the default T = 1 (which is included).
CURVE_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.1, 10.0, 13))


def _write_csv(frame: pl.DataFrame, name: str) -> None:
    PLOTS.mkdir(parents=True, exist_ok=True)
    tmp = PLOTS / f".{name}.tmp"
    frame.write_csv(tmp)
    tmp.replace(PLOTS / name)


MAP_POSITION_SCHEMA = {"model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8,
                       "secular": pl.Float64, "self_expression": pl.Float64}


def map_positions(runs: dict[tuple[str, str], Path], transform_path: Path) -> pl.DataFrame:
    """Each (model, method, country) on the cultural map (Figure 1).

    From the map-item answers the simulate stage kept apart (``map_answers.parquet``,
    written with ``simulate.map_items``): expected item values, projected with the
    map's own transform. A run without that file (map items off, or a method whose
    personas state the answers) has no row; the report says which.
    Calibration is mean-preserving, so calibrated positions would be the same.
    """
    if not transform_path.exists():
        return pl.DataFrame(schema=MAP_POSITION_SCHEMA)
    from valuesim.survey.inglehart_welzel import IWTransform
    from valuesim.survey.map_expectations import expected_map_items

    transform = IWTransform.load(transform_path)
    rows = []
    for (model, method), answers_path in runs.items():
        path = answers_path.with_name("map_answers.parquet")
        if not path.exists():
            continue
        expected = expected_map_items(read_parquet(path, "simulate"))
        for (country,), grp in expected.group_by(["country"], maintain_order=True):
            try:
                secular, self_expression = transform.project_expected(
                    dict(grp.select("item", "expected").iter_rows())
                )
            except DataError:
                continue  # too few usable items for one axis (all flagged): no position
            rows.append({"model": model, "method": method, "country": country,
                         "secular": secular, "self_expression": self_expression})
    return pl.DataFrame(rows, schema=MAP_POSITION_SCHEMA).sort(["model", "method", "country"])


def personas_per_country(answers: pl.DataFrame) -> int:
    """The run's N: personas per country that contribute an answer (the largest, where
    a country has fewer)."""
    usable = answers.filter(pl.col("flag").fill_null("") == "") if "flag" in answers.columns else answers
    counts = usable.group_by("country").agg(pl.col("persona_id").n_unique())["persona_id"]
    return int(counts.max() or 0)  # type: ignore[arg-type]


def run(params: Params, **_: object) -> None:
    from valuesim.prompts import persona_kind

    an = params.analysis
    population = read_parquet(CALIBRATED / "population.parquet", "calibrate")
    human = read_parquet(HUMAN_DISTRIBUTIONS, "human")
    kept = read_json(KEPT_QUESTIONS, "human", keys=("kept",))["kept"]
    respondents = read_parquet(RESPONDENTS, "extract")
    cells = scores.score_cells(population, human)
    countries = scores.by_country(cells)
    selected = sorted(set(cells["country"].to_list()))

    sample_frames, temp_frames = [], []
    runs = simulated_runs(SIMULATED, params.simulate.models, params.simulate.methods)
    answers = {key: read_parquet(path, "simulate") for key, path in runs.items()}
    run_n = {key: personas_per_country(a) for key, a in answers.items() if persona_kind(key[1])[0]}
    for (model, method), frame in answers.items():
        blocks = build_blocks(frame, human, kept)
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
    floors = {
        f"{model}/{method}": {"n": n, **floor_spread.filter(pl.col("n") == n)
                              .select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)}
        for (model, method), n in run_n.items()
    }
    halves = references.split_half(respondents, human, selected, kept, an.subsample_repeats, an.seed)
    half = references.spread(halves).select("mae", "mae_sd", "wasserstein", "wasserstein_sd").row(0, named=True)

    coverage = scores.coverage_summary(answers)
    summary = scores.summary(cells, an.bootstrap, an.seed).join(coverage, on=["model", "method"], how="left")
    floor_cols = pl.DataFrame(
        [{"model": k.split("/", 1)[0], "method": k.split("/", 1)[1], "n_personas": v["n"],
          "floor_mae": v["mae"], "floor_mae_sd": v["mae_sd"], "floor_wasserstein": v["wasserstein"]}
         for k, v in floors.items()],
        schema={"model": pl.Utf8, "method": pl.Utf8, "n_personas": pl.Int64, "floor_mae": pl.Float64,
                "floor_mae_sd": pl.Float64, "floor_wasserstein": pl.Float64},
    )
    summary = summary.join(floor_cols, on=["model", "method"], how="left")
    ref_summary = scores.summary(ref_cells, an.bootstrap, an.seed)

    write_parquet(cells, EVAL / "cells.parquet")
    write_parquet(countries, EVAL / "by_country.parquet")
    write_parquet(summary, EVAL / "summary.parquet")
    write_parquet(ref_cells, EVAL / "reference_cells.parquet")
    write_parquet(ref_countries, EVAL / "reference_by_country.parquet")
    write_parquet(ref_summary, EVAL / "reference_summary.parquet")
    write_parquet(floor, EVAL / "sampling_floor.parquet")
    write_parquet(halves, EVAL / "split_half.parquet")
    write_parquet(scores.wilcoxon_table(cells, ref_cells), EVAL / "wilcoxon.parquet")
    write_parquet(scores.method_tests(cells), EVAL / "mann_whitney.parquet")
    write_parquet(curves.per_question(cells), EVAL / "per_question.parquet")
    write_parquet(sample_sizes, EVAL / "sample_size.parquet")
    write_parquet(temperature, EVAL / "temperature.parquet")
    write_parquet(map_positions(runs, MAP_TRANSFORM), EVAL / "map_positions.parquet")

    # DVC plot data: flat CSVs with a "run" column (model/method) to group lines by.
    run_col = pl.concat_str(["model", "method"], separator="/").alias("run")
    all_countries = pl.concat([countries, ref_countries])
    _write_csv(all_countries.select(run_col, "country", "mae", "wasserstein_cal"), "mae_by_country.csv")
    _write_csv(
        pl.concat([
            sample_sizes.group_by(["model", "method", "n"]).agg(pl.col("mae").mean())
            .sort(["model", "method", "n"]).select(run_col, "n", "mae"),
            floor_spread.filter(pl.col("n").is_in(an.sample_sizes))
            .select(pl.lit("reference/sampling_floor").alias("run"), "n", "mae"),
        ]),
        "sample_size.csv",
    )
    _write_csv(
        temperature.sort(["model", "method", "scaling", "temperature"]).select(
            pl.concat_str(["model", "method", "scaling"], separator="/").alias("run"),
            "temperature", "mae", "wasserstein",
        ),
        "temperature.csv",
    )
    write_json(
        scores.metrics_json(pl.concat([summary.select(ref_summary.columns), ref_summary]), all_countries,
                            coverage, floors, half),
        METRICS,
    )

"""Simulated answers as tables: per persona and question, and per country population.

A population distribution is the equal-weight mean of its personas' distributions
(personas were drawn proportionally to the survey weights, so each counts once).
Flagged rows (no probability on any admissible answer) stay in the answers table
with their flag and are left out of the means; the summary counts them.

Nothing here talks to a model: the simulate stage and the Shapley analysis hand in
the prompts and the answer distributions the engine returned, and get tables (and
the simulate output directory) back. That is why this lives outside ``valuesim.llm``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.artifacts import atomic_dir, write_json, write_parquet
from valuesim.errors import DataError
from valuesim.llm.types import AnswerDistribution
from valuesim.prompts import PromptUnit
from valuesim.survey.bank import QuestionBank

ANSWERS_SCHEMA: dict[str, pl.DataType] = {
    "persona_id": pl.Utf8(),
    "country": pl.Utf8(),
    "question": pl.Utf8(),
    "codes": pl.List(pl.Int64()),
    "probs": pl.List(pl.Float64()),
    "coverage": pl.Float64(),
    "estimator": pl.Utf8(),
    "answer_rule": pl.Utf8(),
    "flag": pl.Utf8(),
}
POPULATION_SCHEMA: dict[str, pl.DataType] = {
    "country": pl.Utf8(),
    "question": pl.Utf8(),
    "codes": pl.List(pl.Int64()),
    "probs": pl.List(pl.Float64()),
    "n_personas": pl.Int64(),
    "mean_coverage": pl.Float64(),
}


def answers_frame(
    units: Sequence[PromptUnit], results: Sequence[AnswerDistribution], bank: QuestionBank
) -> pl.DataFrame:
    """One row per prompt (contract: answers.parquet), in prompt order."""
    if len(units) != len(results):
        raise ValueError(f"{len(units)} prompts but {len(results)} results")
    rows = []
    for unit, dist in zip(units, results, strict=True):
        codes = bank.item(unit.question).codes
        if len(codes) != len(dist.probs):
            raise DataError(
                f"question {unit.question} has {len(codes)} answer codes but its prompt offered "
                f"{len(dist.probs)} answers; the question bank and prompts disagree"
            )
        rows.append({
            "persona_id": unit.persona_id, "country": unit.country, "question": unit.question,
            "codes": codes, "probs": list(dist.probs), "coverage": dist.coverage,
            "estimator": dist.estimator, "answer_rule": dist.answer_rule, "flag": dist.flag,
        })
    return pl.DataFrame(rows, schema=ANSWERS_SCHEMA)


def population_frame(answers: pl.DataFrame) -> pl.DataFrame:
    """Equal-weight mean over the unflagged personas of each (country, question).

    A cell whose every persona is flagged has no row (and is counted in the summary).
    """
    usable = answers.filter(pl.col("flag") == "")
    rows = []
    for (country, question), group in usable.group_by(["country", "question"], maintain_order=True):
        probs = np.asarray(group["probs"].to_list(), dtype=np.float64)
        rows.append({
            "country": country, "question": question, "codes": group["codes"][0].to_list(),
            "probs": probs.mean(axis=0).tolist(), "n_personas": group.height,
            "mean_coverage": float(group["coverage"].mean()),  # type: ignore[arg-type]
        })
    return pl.DataFrame(rows, schema=POPULATION_SCHEMA).sort(["country", "question"])


def check_coverage(answers: pl.DataFrame, label: str, answer_rule: str) -> None:
    """A run where no answer has any probability on the scale has nothing to score:
    fail here with the likely cause instead of writing NaN metrics downstream."""
    if answers.height and answers.filter(pl.col("coverage") > 0).is_empty():
        raise DataError(
            f"{label}: every one of {answers.height} answers has coverage 0 (no probability on "
            f"any admissible answer under answer_rule {answer_rule}); the model does not answer "
            "in the scale's format: check the prompts (valuesim prompt show), try answer_rule "
            "answer_start, or use another model"
        )


def empty_cells(answers: pl.DataFrame, population: pl.DataFrame) -> list[str]:
    """(country, question) cells with answers but no usable persona, as "JPN/Q6"."""
    asked = answers.select("country", "question").unique()
    missing = asked.join(population.select("country", "question"), on=["country", "question"], how="anti")
    return sorted(f"{c}/{q}" for c, q in missing.iter_rows())


# Per-run statistics of the simulate stage (cache hits, sent, calls, retries, tokens,
# cost, wall time). They depend on the cache state and the machine, so they stay out of
# the DVC-hashed data/simulated/ outputs; this folder is git-ignored, no DVC output and
# no stage's dependency, and holds the latest run of each (model, method).
RUNS = Path("reports/runs")


def run_stats_path(model: str, method: str) -> Path:
    return RUNS / f"{model}-{method}.json"


def write_run_stats(path: Path, stats: Mapping[str, object]) -> None:
    """Replace ``path`` atomically with ``stats`` (informational; nothing reads it back)."""
    write_json(stats, path, sort_keys=True)


def write_outputs(
    out_dir: Path,
    answers: pl.DataFrame,
    population: pl.DataFrame,
    summary: Mapping[str, object],
    map_answers: pl.DataFrame | None = None,
) -> None:
    """Write answers, population, summary (and map answers, when asked) into
    ``out_dir`` atomically.

    Everything goes into a sibling temporary directory first; the old output (if
    any) is swapped out only once the new one is complete, so a killed run never
    leaves a partly written directory at ``out_dir``.
    """
    with atomic_dir(out_dir) as tmp:
        write_parquet(answers, tmp / "answers.parquet")
        write_parquet(population, tmp / "population.parquet")
        if map_answers is not None:
            write_parquet(map_answers, tmp / "map_answers.parquet")
        write_json(summary, tmp / "summary.json", sort_keys=True)

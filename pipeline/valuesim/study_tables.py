"""The study below the aggregates, as long frames: what :class:`valuesim.study.Study`
returns and what ``valuesim export --sqlite`` writes (:mod:`valuesim.browse.sqlite_export`).

Pure frame code over the stages' outputs (no file is read here), so the notebook API and
the exported database are the same tables by construction:

* :func:`distributions`: one row per (model, method, country, question, code): the
  human share beside the simulated probability (raw, calibrated, plain), joined on
  (country, question, code);
* :func:`cells`: one row per (model, method, country, question) with its errors, the
  references' cells below the runs';
* :func:`country_results`: the same per country;
* :func:`tests`: the paired (clustered) tests, the per-country Wilcoxon tests and the
  Mann-Whitney tests in one frame;
* :func:`prompt_heads` and :func:`question_prompts`: the exact system and user messages
  the simulate stage sends, rendered by :mod:`valuesim.prompts` (the stage's own code),
  each stored once: a prompt is the head of its persona and the message of its question.

The scoreboard is the report's own :func:`valuesim.report.tables.results_table`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from valuesim.survey.bank import QuestionBank

CELL_KEY = ("model", "method", "country", "question")
DISTRIBUTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "method": pl.Utf8(), "country": pl.Utf8(), "question": pl.Utf8(),
    "code": pl.Int64(),
    "human": pl.Float64(),  # weighted share of the country's respondents (null: no human row)
    "simulated": pl.Float64(),  # the persona mean, uncalibrated
    "calibrated": pl.Float64(),  # mean-preserving temperature scaling (the study's calibration)
    "plain": pl.Float64(),  # plain temperature scaling
}
TEST_SCHEMA: dict[str, pl.DataType] = {
    "test": pl.Utf8(), "model": pl.Utf8(), "country": pl.Utf8(), "a": pl.Utf8(), "b": pl.Utf8(),
    "vs_reference": pl.Boolean(), "n": pl.Int64(), "n_questions": pl.Int64(),
    "mean_a": pl.Float64(), "mean_b": pl.Float64(), "diff": pl.Float64(),
    "ci_lo": pl.Float64(), "ci_hi": pl.Float64(), "statistic": pl.Float64(),
    "p": pl.Float64(), "p_bh": pl.Float64(), "better": pl.Utf8(), "description": pl.Utf8(),
}
PROMPT_HEAD_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.Utf8(), "persona_id": pl.Utf8(), "country": pl.Utf8(), "system": pl.Utf8(),
}
QUESTION_SCHEMA: dict[str, pl.DataType] = {
    "question": pl.Utf8(), "text": pl.Utf8(), "scale": pl.Utf8(), "min": pl.Int64(), "max": pl.Int64(),
    "user": pl.Utf8(), "answers": pl.Utf8(),
}


def distributions(calibrated: pl.DataFrame, human: pl.DataFrame) -> pl.DataFrame:
    """The calibrate stage's population (one row per cell, code lists) exploded to one row
    per answer code and joined with the human shares on (country, question, code)."""
    sim = calibrated.select(
        *CELL_KEY, pl.col("codes").alias("code"), pl.col("probs_raw").alias("simulated"),
        pl.col("probs_cal").alias("calibrated"), pl.col("probs_plain").alias("plain"),
    ).explode(["code", "simulated", "calibrated", "plain"])
    hum = human.select("country", "question", "code", pl.col("share").alias("human"))
    joined = sim.join(hum, on=["country", "question", "code"], how="left")
    return joined.select(list(DISTRIBUTION_SCHEMA)).cast(DISTRIBUTION_SCHEMA).sort([*CELL_KEY, "code"])  # type: ignore[arg-type]


def cells(runs: pl.DataFrame, references: pl.DataFrame, populations: pl.DataFrame | None = None) -> pl.DataFrame:
    """The evaluate stage's cells (every run) then the references' (model "reference"),
    with each run cell's persona count and mean coverage from its simulated population."""
    out = pl.concat([runs, references.select(runs.columns).cast(runs.schema)])  # type: ignore[arg-type]
    if populations is not None and populations.height:
        out = out.join(populations.select(*CELL_KEY, "n_personas", "mean_coverage"), on=list(CELL_KEY), how="left")
    return out


def country_results(runs: pl.DataFrame, references: pl.DataFrame) -> pl.DataFrame:
    """Per (model, method, country): the mean errors over the questions, references below."""
    return pl.concat([runs, references.select(runs.columns).cast(runs.schema)])  # type: ignore[arg-type]


def tests(paired: pl.DataFrame | None, wilcoxon: pl.DataFrame, mann_whitney: pl.DataFrame) -> pl.DataFrame:
    """Every comparison the evaluate stage tested, one row each (see TEST_SCHEMA).

    ``paired``: method a vs method or reference b on the country-averaged paired MAE
    differences, clustered by question (country null); ``wilcoxon``: the same pair per
    country over the questions; ``mann_whitney``: the study-wide unpaired test.
    ``diff`` is MAE a - b where the test reports it; ``better`` the side with lower MAE.
    """
    parts = []
    if paired is not None and paired.height:
        parts.append(paired.select(
            pl.lit("paired").alias("test"), "model", pl.lit(None, pl.Utf8).alias("country"), "a", "b",
            "vs_reference", pl.col("n_cells").alias("n"), "n_questions", "mean_a", "mean_b", "diff",
            "ci_lo", "ci_hi", "p", "p_bh", "better", pl.col("test").alias("description"),
        ))
    if wilcoxon.height:
        parts.append(wilcoxon.select(
            pl.lit("wilcoxon").alias("test"), "model", "country", pl.col("method_a").alias("a"),
            pl.col("method_b").alias("b"), "vs_reference", "n", pl.col("n").alias("n_questions"), "statistic",
            pl.col("p_value").alias("p"), "p_bh", "better",
            pl.lit("Wilcoxon signed-rank over the questions' paired MAEs in one country").alias("description"),
        ))
    if mann_whitney.height:
        parts.append(mann_whitney.select(
            pl.lit("mann_whitney").alias("test"), "model", "a", "b", "statistic", pl.col("p_value").alias("p"),
            pl.col("p_adjusted").alias("p_bh"), pl.col("test").alias("description"),
        ))
    empty = pl.DataFrame(schema=TEST_SCHEMA)
    return pl.concat([empty, *(p.cast({k: v for k, v in TEST_SCHEMA.items() if k in p.columns}) for p in parts)],
                     how="diagonal").select(list(TEST_SCHEMA))


def prompt_heads(
    method: str, personas: pl.DataFrame, countries: Sequence[str], guidance: str,
) -> pl.DataFrame:
    """The system message of every prompt of one method, once per persona (country-level
    methods: once per country, persona_id ``"{country}:{method}"`` as the simulate stage
    names it), rendered by :func:`valuesim.prompts.system_message` as the stage renders it."""
    from valuesim.methods import get_method
    from valuesim.prompts import system_message

    m = get_method(method)
    if m.persona is None:
        rows = [(method, f"{c}:{method}", c, system_message(method, guidance, c)) for c in countries]
    else:
        chosen = personas.filter((pl.col("kind") == m.persona) & (pl.col("nationality") == m.nationality)
                                 & pl.col("country").is_in(list(countries)))
        rows = [(method, pid, c, system_message(method, guidance, c, text))
                for pid, c, text in chosen.select("persona_id", "country", "text").iter_rows()]
    return pl.DataFrame(rows, schema=PROMPT_HEAD_SCHEMA, orient="row")


def question_prompts(bank: QuestionBank, questions: Sequence[str]) -> pl.DataFrame:
    """Every question's user message (:func:`valuesim.prompts.user_message`), its
    wording, scale and the replies the model may give."""
    from valuesim.prompts import answer_strings, scale_text, user_message

    rows = []
    for q in questions:
        item = bank.item(q)
        rows.append((q, item.text, scale_text(item), item.min, item.max, user_message(item),
                     ", ".join(answer_strings(item))))
    return pl.DataFrame(rows, schema=QUESTION_SCHEMA, orient="row")

"""What each exported table and column means, and how Datasette shows it.

One source for three readers: the Datasette metadata ``valuesim view`` serves (table
and column descriptions, facets, sort orders, label columns), the ``<name>.metadata.json``
``valuesim export`` writes beside the database for anyone running Datasette themselves,
and the data dictionary in the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the same wording for the same column in every table
_ERRORS: dict[str, str] = {
    "mae": "absolute error of the mean answer, |simulated mean - human mean| / scale range (uncalibrated)",
    "mae_cal": "MAE after mean-preserving temperature scaling (the study's calibration; equal to mae by design)",
    "wasserstein": "Wasserstein-1 distance between the simulated and human distributions / scale range",
    "wasserstein_cal": "Wasserstein-1 after mean-preserving calibration",
    "nvar": "normalized variance of the simulated distribution (variance / its maximum on the scale)",
    "nvar_cal": "normalized variance after mean-preserving calibration",
    "nvar_human": "normalized variance of the human distribution",
    "mae_plain": "MAE after plain temperature scaling (moves the mean)",
    "wasserstein_plain": "Wasserstein-1 after plain temperature scaling",
    "nvar_plain": "normalized variance after plain temperature scaling",
}
_RUN: dict[str, str] = {
    "model": "model name in params.yaml (models), or 'reference' for the reference predictors",
    "method": "prompting method (see the methods table), or the reference's name",
}
_COUNTRY = "ISO 3166 alpha-3 code (see the countries table)"
_QUESTION = "WVS-7 question id (see the questions table)"
_CELL_ID = "the cell, model/method/country/question: links to its row in cells"
_FACETS = ["model", "method", "country", "question"]


@dataclass(frozen=True)
class TableDoc:
    description: str
    columns: dict[str, str]
    facets: list[str] = field(default_factory=list)
    sort: str | None = None
    sort_desc: str | None = None
    label_column: str | None = None


TABLES: dict[str, TableDoc] = {
    "scoreboard": TableDoc(
        "The report's scoreboard: per model its methods by error (rank 1 = lowest), then the "
        "references and the floors in the same units, each method against the best reference by "
        "the paired test; the same frame as valuesim.load_study().scoreboard() and the report's table.",
        {**_RUN, "kind": "method, reference (no model) or floor (what perfect personas or N real "
                          "respondents would score)",
         "label": "the row's name as the report shows it",
         "rank": "methods by error within the model, 1 = lowest (empty for references and floors)",
         "mae": "MAE averaged over countries (each country's mean over questions)",
         "mae_lo": "95% bootstrap CI lower end (resampling countries, questions fixed)",
         "mae_hi": "95% bootstrap CI upper end",
         "best_reference": "the reference with the lowest MAE, which each method is tested against",
         "vs_best_reference": "the method's MAE minus the best reference's on the cells both score "
                              "(paired, averaged per question)",
         "vs_best_reference_lo": "95% CI lower end of that difference (questions resampled)",
         "vs_best_reference_hi": "95% CI upper end of that difference",
         "vs_best_reference_p_bh": "Benjamini-Hochberg-adjusted p of the sign-flip test over questions",
         "vs_best_reference_verdict": "better, worse or no difference at p_BH < 0.05",
         **{k: v for k, v in _ERRORS.items() if k in ("wasserstein", "wasserstein_cal", "nvar", "nvar_cal",
                                                      "nvar_human")},
         "coverage_mean": "probability on admissible answers under the answer rule, mean over answers",
         "coverage_p5": "5th percentile of that coverage over answers",
         "n_personas": "personas per country (persona methods)",
         "persona_floor_mae": "persona-information floor: what a perfect simulator of N personas would score",
         "answer_floor_mae": "actual-answer floor: the error of N respondents' own answers",
         "answer_rule": "which replies count as an answer (the run's answer rule)",
         "mae_plain": "MAE after plain temperature scaling fitted like the calibration",
         "wasserstein_plain": "Wasserstein after plain temperature scaling",
         "n_countries": "countries averaged"},
        facets=["model", "kind"],
    ),
    "cells": TableDoc(
        "One row per (model, method, country, question): the errors of the simulated population "
        "against the human one. Open a row for its answer distributions (distributions) and every "
        "persona's answer with its prompt (answers).",
        {"cell_id": "model/method/country/question", **_RUN, "country": _COUNTRY, "question": _QUESTION,
         **_ERRORS,
         "temperature": "the mean-preserving temperature applied to this question (fitted leaving it out)",
         "n_personas": "personas whose answers make the simulated population (1 for country-level methods)",
         "mean_coverage": "mean probability on admissible answers over the cell's personas"},
        facets=_FACETS, sort_desc="mae",
    ),
    "distributions": TableDoc(
        "One row per (model, method, country, question, answer code): the human share beside the "
        "simulated probability, joined on (country, question, code).",
        {"cell_id": _CELL_ID, **_RUN, "country": _COUNTRY, "question": _QUESTION,
         "code": "answer code on the question's scale",
         "human": "weighted share of the country's respondents giving this answer",
         "simulated": "the simulated population's probability (mean over personas), uncalibrated",
         "calibrated": "after mean-preserving temperature scaling",
         "plain": "after plain temperature scaling"},
        facets=_FACETS,
    ),
    "country_results": TableDoc(
        "One row per (model, method, country): the cells' errors averaged over the questions.",
        {**_RUN, "country": _COUNTRY, **_ERRORS, "n_questions": "questions averaged"},
        facets=["model", "method", "country"], sort_desc="mae",
    ),
    "tests": TableDoc(
        "Every comparison the evaluate stage tested: paired (the report's paired table: country-"
        "averaged MAE differences, clustered by question), wilcoxon (per country, over questions), "
        "mann_whitney (unpaired, study-wide).",
        {"test": "paired, wilcoxon or mann_whitney", "model": "model name",
         "country": "the country tested (wilcoxon); empty for study-wide tests",
         "a": "method a", "b": "method or reference b",
         "vs_reference": "b is a reference predictor",
         "n": "paired cells (paired) or questions (wilcoxon)", "n_questions": "questions compared",
         "mean_a": "mean MAE of a", "mean_b": "mean MAE of b", "diff": "MAE a - b",
         "ci_lo": "95% CI lower end of diff", "ci_hi": "95% CI upper end of diff",
         "statistic": "the test statistic", "p": "p-value",
         "p_bh": "Benjamini-Hochberg adjusted p-value", "better": "the side with the lower MAE",
         "description": "the test, in words"},
        facets=["test", "model", "a", "b", "country"], sort="p_bh",
    ),
    "answers": TableDoc(
        "One row per persona's answer: the answer distribution the model gave one persona (or, for "
        "country-level methods, one country) on one question. Links to its cell, persona and prompt.",
        {"answer_id": "model/method/persona_id/question", "cell_id": _CELL_ID, **_RUN, "country": _COUNTRY,
         "question": _QUESTION,
         "persona_id": "the persona (see personas); empty for country-level methods",
         "prompt_id": "the system message sent (see prompts); the user message is the question's",
         "distribution": "the answer distribution, code: probability (renormalized over admissible answers)",
         "codes": "answer codes (JSON)", "probs": "their probabilities (JSON)",
         "coverage": "probability the model put on admissible answers before renormalizing",
         "estimator": "how the distribution was read (logprobs, top_logprobs, sampling, verbalized)",
         "answer_rule": "which replies count as an answer",
         "flag": "why an answer is suspect (empty: none)"},
        facets=[*_FACETS, "flag"],
    ),
    "prompts": TableDoc(
        "The system message of every prompt, once per persona (country-level methods: once per "
        "country), rendered by the simulate stage's own code (valuesim.prompts) with this study's "
        "params.yaml as it was at export (rerun a changed prompts.guidance before exporting: `dvc status` "
        "shows it). The exact prompt of an answer is this message then its question's user message "
        "(the prompt_messages view joins them).",
        {"prompt_id": "the persona id the simulate stage records with each answer",
         "method": _RUN["method"], "country": _COUNTRY,
         "persona_id": "the persona (see personas); empty for country-level methods",
         "system": "the exact system message"},
        facets=["method", "country"],
    ),
    "personas": TableDoc(
        "The personas the study drew (respondents of the human survey, described by one method's "
        "descriptors). The text is what the system message adds after the guidance.",
        {"persona_id": "respondent_id:kind[:nonat]", "method": "the method that uses this persona",
         "respondent_id": "the respondent the persona describes", "country": _COUNTRY,
         "kind": "value, sociodemographic or fewshot", "nationality": "the persona names the country",
         "text": "the descriptor text", "missing_items": "items the respondent did not answer (JSON)"},
        facets=["method", "country", "kind"], label_column="persona_id",
    ),
    "questions": TableDoc(
        "The study's questions (those the human stage kept) and the exact user message sent with each.",
        {"question": "WVS-7 question id", "text": "the question's wording", "scale": "the labelled scale points",
         "min": "lowest code", "max": "highest code", "user": "the exact user message",
         "answers": "the replies the model may give"},
        label_column="question",
    ),
    "methods": TableDoc(
        "The prompting methods of the runs, and the reference predictors.",
        {"method": "method or reference name", "label": "how the report names it",
         "persona": "persona kind (empty: asked once per country)", "nationality": "the prompt names the country",
         "opening": "the guidance that opens the system message (default, generic, survey)",
         "description": "what it is"},
        label_column="label",
    ),
    "countries": TableDoc(
        "The countries of the study.",
        {"country": "ISO 3166 alpha-3 code", "name": "country name as the prompts write it"},
        label_column="name",
    ),
    "human_summary": TableDoc(
        "Per (country, question): the human answers' weighted mean, sample size, Kish effective "
        "sample size and share missing.",
        {"country": _COUNTRY, "question": _QUESTION, "mean": "weighted mean answer", "n": "respondents answering",
         "n_eff": "Kish effective sample size", "missing_share": "share of respondents without an answer"},
        facets=["country", "question"],
    ),
}

VIEWS: dict[str, TableDoc] = {
    "prompt_messages": TableDoc(
        "The exact prompt of every answer: its system message (prompts) and user message (questions), "
        "joined when read, so each is stored once.",
        {"answer_id": TABLES["answers"].columns["answer_id"], **_RUN, "country": _COUNTRY,
         "question": _QUESTION, "persona_id": TABLES["answers"].columns["persona_id"],
         "system": "the exact system message", "user": "the exact user message"},
        facets=_FACETS,
    ),
}

TITLE = "valuesim study"


def datasette_metadata(database: str, source: str = "") -> dict[str, Any]:
    """Datasette metadata for the exported database named ``database`` (its file stem)."""
    tables: dict[str, Any] = {}
    for name, doc in {**TABLES, **VIEWS}.items():
        entry: dict[str, Any] = {"description": doc.description, "columns": dict(doc.columns)}
        if doc.facets:
            entry["facets"] = list(doc.facets)
        if doc.sort:
            entry["sort"] = doc.sort
        if doc.sort_desc:  # the worst first
            entry["sort_desc"] = doc.sort_desc
        if doc.label_column:
            entry["label_column"] = doc.label_column
        tables[name] = entry
    meta: dict[str, Any] = {
        "title": TITLE,
        "description": "A valuesim study below its aggregates: scores, cells, distributions, "
                       "personas and the exact prompts. Start at scoreboard or cells.",
        "databases": {database: {"tables": tables}},
    }
    if source:
        meta["source"] = source
    return meta


def data_dictionary() -> str:
    """The tables and their columns as Markdown (the README's data dictionary)."""
    lines: list[str] = []
    for name, doc in {**TABLES, **VIEWS}.items():
        kind = "view" if name in VIEWS else "table"
        lines += [f"**`{name}`** ({kind}): {doc.description}", "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{col}` | {text} |" for col, text in doc.columns.items()]
        lines.append("")
    return "\n".join(lines)

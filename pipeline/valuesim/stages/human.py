"""human: weighted human answer distributions for the selected countries, the
missing-data filter (kept_questions.json), and their data contract."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from valuesim import paths
from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.stages._io import write_json, write_parquet
from valuesim.survey.bank import load_bank
from valuesim.survey.contracts import validate_human
from valuesim.survey.human import human_distributions
from valuesim.survey.missing_filter import filter_questions


def selected_countries() -> list[str]:
    p = paths.SELECTED_COUNTRIES
    if not p.exists():
        raise DataError(f"{p} not found; run the map stage first (dvc repro map)")
    try:
        countries = json.loads(p.read_text())["countries"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(
            f"{p} is not a valid country selection ({exc}); rerun the map stage"
        ) from exc
    if not countries:
        raise DataError(f"{p} selects no countries; check params countries.select")
    return list(countries)


def run(params: Params, **_: Any) -> None:
    if not paths.RESPONDENTS.exists():
        raise DataError(f"{paths.RESPONDENTS} not found; run the extract stage first")
    countries = selected_countries()
    bank = load_bank(params.data.questions)
    respondents = pl.read_parquet(paths.RESPONDENTS)
    distributions, summary = human_distributions(respondents, bank, countries=countries)
    kept = filter_questions(
        summary, [i.id for i in bank.targets], countries, params.filter.max_missing
    ).to_json()
    # validate before writing: a failing contract leaves no outputs behind
    validate_human(distributions, summary, kept, countries, report_dir=paths.VALIDATION_DIR)
    write_parquet(distributions, paths.HUMAN_DISTRIBUTIONS)
    write_parquet(summary, paths.HUMAN_SUMMARY)
    write_json(kept, paths.KEPT_QUESTIONS)

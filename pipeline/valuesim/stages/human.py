"""human: weighted human answer distributions for the selected countries, the
missing-data filter (kept_questions.json), and their data contract."""

from __future__ import annotations

from typing import Any

from valuesim import artifacts, paths
from valuesim.config import Params
from valuesim.survey.bank import load_bank
from valuesim.survey.contracts import validate_human
from valuesim.survey.human import human_distributions
from valuesim.survey.missing_filter import filter_questions


def run(params: Params, **_: Any) -> None:
    respondents_path = artifacts.require(paths.RESPONDENTS, "extract")
    countries = artifacts.selected_countries()
    bank = load_bank(params.data.questions)
    respondents = artifacts.read_parquet(respondents_path, "extract")
    distributions, summary = human_distributions(respondents, bank, countries=countries)
    kept = filter_questions(
        summary, [i.id for i in bank.targets], countries, params.filter.max_missing
    ).to_json()
    # validate before writing: a failing contract leaves no outputs behind
    validate_human(distributions, summary, kept, countries, report_dir=paths.VALIDATION_DIR)
    with artifacts.output_set():  # all three or none
        artifacts.write_parquet(distributions, paths.HUMAN_DISTRIBUTIONS)
        artifacts.write_parquet(summary, paths.HUMAN_SUMMARY)
        artifacts.write_json(kept, paths.KEPT_QUESTIONS)

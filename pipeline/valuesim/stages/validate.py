"""validate: run the data contracts on the extracted respondents.

Writes reports/validation/respondents.json and fails (ContractError) when the
contract fails. The human outputs are validated by the human stage itself, since
they only exist after it (DVC stages can't depend on a later stage's outputs).
"""

from __future__ import annotations

from typing import Any

from valuesim import artifacts, paths
from valuesim.config import Params
from valuesim.survey.bank import load_bank
from valuesim.survey.contracts import validate_respondents


def run(params: Params, **_: Any) -> None:
    for p in (paths.RESPONDENTS, paths.EXTRACT_META):
        artifacts.require(p, "extract")
    respondents = artifacts.read_parquet(paths.RESPONDENTS, "extract")
    meta = artifacts.read_json(paths.EXTRACT_META, "extract", keys=("countries",))
    bank = load_bank(params.data.questions)
    validate_respondents(
        respondents, bank, expected_counts=meta["countries"], report_dir=paths.VALIDATION_DIR
    )

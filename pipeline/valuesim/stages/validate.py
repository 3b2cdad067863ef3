"""validate: run the data contracts on the extracted respondents.

Writes reports/validation/respondents.json and fails (ContractError) when the
contract fails. The human outputs are validated by the human stage itself, since
they only exist after it (DVC stages can't depend on a later stage's outputs).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from valuesim import paths
from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.survey.bank import load_bank
from valuesim.survey.contracts import validate_respondents


def run(params: Params, **_: Any) -> None:
    for p in (paths.RESPONDENTS, paths.EXTRACT_META):
        if not p.exists():
            raise DataError(f"{p} not found; run the extract stage first (dvc repro extract)")
    respondents = pl.read_parquet(paths.RESPONDENTS)
    meta = json.loads(paths.EXTRACT_META.read_text())
    bank = load_bank(params.data.questions)
    validate_respondents(
        respondents, bank, expected_counts=meta["countries"], report_dir=paths.VALIDATION_DIR
    )

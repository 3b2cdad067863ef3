"""Every respondent source a command or stage takes, behind one function.

Kept apart from :mod:`valuesim.survey.readers` (real WVS files) because it also
dispatches to the synthetic demo population, which itself uses the readers' contract.
"""

from __future__ import annotations

from pathlib import Path

from valuesim.survey.bank import QuestionBank
from valuesim.survey.demo import population as demo
from valuesim.survey.readers import ExtractResult, read_source

# the demo population size per country, as params data.demo_respondents_per_country
DEMO_RESPONDENTS_PER_COUNTRY = 1200


def load_source(
    source: str | Path,
    bank: QuestionBank,
    *,
    demo_n: int = DEMO_RESPONDENTS_PER_COUNTRY,
    seed: int = 0,
    drop_duplicates: bool = False,
) -> ExtractResult:
    """Any respondent source a command takes: the demo aggregates (``.json``, a
    synthetic population drawn as the extract stage draws it) or real WVS files."""
    if str(source).endswith(".json"):
        sample = demo.sample(str(source), bank, demo_n, seed=seed)
        return ExtractResult(sample.respondents, sample.missing_counts, str(source), synthetic=True)
    return read_source(source, bank, drop_duplicates=drop_duplicates)

"""extract: WVS files (or the synthetic demo) -> data/interim/ (respondents, missing
counts, extract_meta.json). Reads params section ``data`` only."""

from __future__ import annotations

import logging
from typing import Any

from valuesim import paths
from valuesim.artifacts import output_set, write_json, write_parquet
from valuesim.config import Params
from valuesim.survey.bank import load_bank
from valuesim.survey.readers import CITATION
from valuesim.survey.sources import load_source

log = logging.getLogger(__name__)


def run(params: Params, **_: Any) -> None:
    data = params.data
    drop = data.drop_duplicates
    # the demo aggregates (.json) or real WVS files, through the helper the commands use
    result = load_source(
        data.source,
        load_bank(data.questions),
        demo_n=data.demo_respondents_per_country,
        seed=0,
        drop_duplicates=drop,
    )
    meta = {
        "synthetic": result.synthetic,
        "source": result.source,
        "countries": result.country_counts,
        "citation": (
            "SYNTHETIC demo population generated from aggregates of: " + CITATION
            if result.synthetic
            else CITATION
        ),
    }
    # all three or none (a full or read-only data/ keeps the old extract); meta last
    with output_set():
        write_parquet(result.respondents, paths.RESPONDENTS)
        write_parquet(result.missing_counts, paths.MISSING_COUNTS)
        write_json(meta, paths.EXTRACT_META)
    log.info("extracted %d respondents from %s", result.respondents.height, result.source)

"""`personas` stage: sampled respondents -> persona texts of every kind.

Writes every kind (value, sociodemographic, fewshot) with and without nationality, so
each prompting method finds its personas in one file.
"""

from __future__ import annotations

import json
import sys

import polars as pl

from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.paths import GENERATED_DESCRIPTORS, PERSONAS, RESPONDENTS, SELECTED_COUNTRIES
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas, write_persona_tables
from valuesim.personas.sampling import sample_respondents, shortfall_warnings
from valuesim.survey.bank import load_bank


def _countries() -> list[str]:
    try:
        data = json.loads(SELECTED_COUNTRIES.read_text(encoding="utf-8"))
        return list(data["countries"])
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise DataError(
            f"{SELECTED_COUNTRIES} is unreadable ({type(exc).__name__}: {exc}); rerun `dvc repro map`"
        ) from exc


def _respondents() -> pl.DataFrame:
    try:
        return pl.read_parquet(RESPONDENTS)
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{RESPONDENTS} is unreadable ({why}); rerun `dvc repro extract`") from exc


def run(params: Params, **_: object) -> None:
    bank = load_bank(params.data.questions)
    for p, stage in ((RESPONDENTS, "extract"), (SELECTED_COUNTRIES, "map")):
        if not p.exists():
            raise DataError(f"{p} not found; run the {stage} stage first (dvc repro {stage})")
    countries = _countries()
    value_set = descriptors.load(GENERATED_DESCRIPTORS, bank, kind="value")
    socio_set = descriptors.load(params.descriptors.sociodemographic_path, bank, kind="sociodemographic")
    n = params.personas.n_per_country
    sample = sample_respondents(_respondents(), countries, n, params.personas.seed)
    for line in shortfall_warnings(sample, n):
        print(f"warning: personas: {line}", file=sys.stderr)
    personas = build_personas(sample, bank, value_set, socio_set)
    write_persona_tables(personas, PERSONAS.parent)
    print(f"personas: {sample.height} respondents x {personas.height // max(sample.height, 1)} "
          f"variants from {len(countries)} countries -> {PERSONAS}")

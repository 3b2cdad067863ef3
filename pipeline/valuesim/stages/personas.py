"""`personas` stage: sampled respondents -> persona texts of every kind.

Writes every kind (value, sociodemographic, fewshot) with and without nationality, so
each prompting method finds its personas in one file.
"""

from __future__ import annotations

import json

import polars as pl

from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.paths import GENERATED_DESCRIPTORS, PERSONAS, RESPONDENTS, SELECTED_COUNTRIES
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas, write_persona_tables
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import load_bank


def run(params: Params, **_: object) -> None:
    bank = load_bank(params.data.questions)
    for p, stage in ((RESPONDENTS, "extract"), (SELECTED_COUNTRIES, "map")):
        if not p.exists():
            raise DataError(f"{p} not found; run the {stage} stage first (dvc repro {stage})")
    countries = json.loads(SELECTED_COUNTRIES.read_text())["countries"]
    value_set = descriptors.load(GENERATED_DESCRIPTORS, bank, kind="value")
    socio_set = descriptors.load(params.descriptors.sociodemographic_path, bank, kind="sociodemographic")
    sample = sample_respondents(
        pl.read_parquet(RESPONDENTS), countries, params.personas.n_per_country, params.personas.seed
    )
    personas = build_personas(sample, bank, value_set, socio_set)
    write_persona_tables(personas, PERSONAS.parent)
    print(f"personas: {sample.height} respondents x {personas.height // max(sample.height, 1)} "
          f"variants from {len(countries)} countries -> {PERSONAS}")

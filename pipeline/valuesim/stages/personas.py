"""`personas` stage: sampled respondents -> persona texts of every kind.

Writes every kind (value, sociodemographic, fewshot) with and without nationality, so
each prompting method finds its personas in one file.
"""

from __future__ import annotations

import sys

from valuesim import artifacts
from valuesim.config import Params
from valuesim.paths import GENERATED_DESCRIPTORS, PERSONAS, RESPONDENTS, SELECTED_COUNTRIES
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas, write_persona_tables
from valuesim.personas.sampling import sample_respondents, shortfall_warnings
from valuesim.survey.bank import load_bank


def run(params: Params, **_: object) -> None:
    bank = load_bank(params.data.questions)
    # both inputs checked before the (slower) descriptor sets are loaded
    artifacts.require(RESPONDENTS, "extract")
    artifacts.require(SELECTED_COUNTRIES, "map")
    countries = artifacts.selected_countries()
    value_set = descriptors.load(GENERATED_DESCRIPTORS, bank, kind="value")
    socio_set = descriptors.load(params.descriptors.sociodemographic_path, bank, kind="sociodemographic")
    n = params.personas.n_per_country
    respondents = artifacts.read_parquet(RESPONDENTS, "extract")
    sample = sample_respondents(respondents, countries, n, params.personas.seed)
    for line in shortfall_warnings(sample, n):
        print(f"warning: personas: {line}", file=sys.stderr)
    personas = build_personas(sample, bank, value_set, socio_set)
    with artifacts.output_set():  # every method's table or none
        write_persona_tables(personas, PERSONAS.parent)
    print(f"personas: {sample.height} respondents x {personas.height // max(sample.height, 1)} "
          f"variants from {len(countries)} countries -> {PERSONAS}")

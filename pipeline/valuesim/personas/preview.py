"""Personas for one country, for the `personas show` and `prompt show` commands.

Uses the pipeline's ``data/personas/personas.parquet`` when it exists and no source is
given; otherwise samples from a source exactly as the personas stage would: the
synthetic demo population (a ``.json`` aggregates file, the default) or real WVS files.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from valuesim.artifacts import all_personas
from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.paths import GENERATED_DESCRIPTORS, PERSONAS
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import QuestionBank
from valuesim.survey.countries import country_name

# The demo population drawn for a preview; fixed so previews are repeatable.
DEMO_SEED = 0


def respondents_from_source(
    source: str, bank: QuestionBank, country: str, demo_n: int
) -> pl.DataFrame:
    if source.endswith(".json"):
        from valuesim.survey.demo.population import generate

        return generate(source, bank, demo_n, DEMO_SEED, countries=[country])
    from valuesim.survey.readers import read_source

    path = Path(source)
    # a directory of per-country files: read only this country's file
    per_country = sorted(path.glob(f"{country}.*")) if path.is_dir() else []
    frame = read_source(per_country[0] if per_country else path, bank).respondents
    return frame.filter(pl.col("country") == country)


def country_personas(
    params: Params,
    bank: QuestionBank,
    country: str,
    *,
    source: str | None = None,
    seed: int | None = None,
    respondent: str | None = None,
    n: int | None = None,
) -> pl.DataFrame:
    """All persona rows (every kind, both nationality flags) for ``country``: the
    sampled respondents (``n``, default ``personas.n_per_country``, in draw order), or
    only ``respondent`` (sampled or not) when given."""
    country_name(country)  # unknown code -> DataError before reading anything
    n = params.personas.n_per_country if n is None else n
    study = n == params.personas.n_per_country  # the personas stage's own sample
    if source is None and seed is None and study and PERSONAS.exists():
        found = all_personas().filter(pl.col("country") == country)
        if respondent is not None:
            found = found.filter(pl.col("respondent_id") == respondent)
        if found.height:
            return found
    value_path = GENERATED_DESCRIPTORS if GENERATED_DESCRIPTORS.exists() else Path(params.descriptors.path)
    value_set = descriptors.load(value_path, bank, kind="value")
    socio_set = descriptors.load(params.descriptors.sociodemographic_path, bank, kind="sociodemographic")
    src = source or params.data.source
    respondents = respondents_from_source(src, bank, country, params.data.demo_respondents_per_country)
    if respondents.height == 0:
        raise DataError(f"no respondents for {country} in {src}; pick a country the source has")
    if respondent is not None:
        sample = respondents.filter(pl.col("respondent_id") == respondent)
        if sample.height == 0:
            raise DataError(
                f"respondent {respondent!r} not found for {country} in {src}; "
                "see `valuesim personas show` for ids"
            )
    else:
        sample = sample_respondents(
            respondents, [country], n, params.personas.seed if seed is None else seed,
        )
    return build_personas(sample, bank, value_set, socio_set)

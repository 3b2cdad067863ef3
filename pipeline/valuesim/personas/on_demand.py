"""Personas on demand: the study's sampling for any countries, ``n`` and source.

:func:`valuesim.asking.ask` needs personas for countries and sizes the study may not
have sampled. They are made exactly as the extract and personas stages make them:
respondents from the study's extract (``data/interim/respondents.parquet``), else
from ``data.source`` or a given source (the demo aggregates drawn with the extract's
seed, or real WVS files read as the extract reads them), sampled by
:func:`valuesim.personas.sampling.sample_respondents` with ``personas.seed`` and worded
with the study's descriptor sets. Sampling is deterministic given the seed, so ``n =
personas.n_per_country`` from the study's population gives the study's own personas
(and prompts, and cached answers); another ``n`` is its own draw, which shares most
(not always all) of its personas with the study's.

Every check (countries the source has, ``n`` against its respondents) raises a
one-line error before anything is scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from valuesim.errors import ConfigError, DataError
from valuesim.paths import GENERATED_DESCRIPTORS, RESPONDENTS
from valuesim.survey.bank import QuestionBank

if TYPE_CHECKING:
    from valuesim.config import Params

_ISO3 = re.compile(r"^[A-Z]{3}$")


def under(project: Path, path: str | Path) -> Path:
    """``path`` as seen from the project directory (absolute paths unchanged)."""
    p = Path(path)
    return p if p.is_absolute() else project / p


def _per_country_files(path: Path) -> dict[str, Path]:
    """ISO3 -> file for a directory of per-country WVS files (empty for anything else)."""
    from valuesim.survey.readers import source_files

    if not path.is_dir():
        return {}
    files = source_files(path)
    by_code = {f.name.split(".")[0]: f for f in files}
    return by_code if all(_ISO3.match(c) for c in by_code) else {}


def _unknown_countries(missing: Sequence[str], available: Sequence[str], where: str) -> DataError:
    return DataError(
        f"{', '.join(missing)} not in {where}; it has {', '.join(sorted(available))}"
    )


def respondents_for(
    source: str | None, params: Params, bank: QuestionBank, countries: Sequence[str], project: Path
) -> tuple[pl.DataFrame, str, int | None]:
    """(respondents of ``countries``, where they came from, demo size or None).

    ``source`` None: the study's extract when it exists, else ``data.source``."""
    if source is None and (project / RESPONDENTS).exists():
        from valuesim.artifacts import read_parquet

        frame = read_parquet(project / RESPONDENTS, "extract")
        have = frame["country"].unique().to_list()
        missing = [c for c in countries if c not in have]
        where = f"{RESPONDENTS} (the study's extract of {params.data.source})"
        if missing:
            raise _unknown_countries(missing, have, where)
        return frame.filter(pl.col("country").is_in(list(countries))), where, None
    src = Path(source) if source is not None else under(project, params.data.source)
    if source is not None and not src.exists() and (project / source).exists():
        src = project / source
    if str(src).endswith(".json"):
        from valuesim.survey.demo.population import generate, load_aggregates

        have = list(load_aggregates(src).countries)
        missing = [c for c in countries if c not in have]
        if missing:
            raise _unknown_countries(missing, have, f"the demo population {src}")
        n = params.data.demo_respondents_per_country
        # seed 0 and per-country streams: the rows the extract stage draws
        return generate(src, bank, n, 0, countries=list(countries)), f"demo population {src}", n
    from valuesim.survey.readers import read_source

    drop = params.data.drop_duplicates  # as the extract stage reads them
    files = _per_country_files(src)
    if files:
        missing = [c for c in countries if c not in files]
        if missing:
            raise _unknown_countries(missing, list(files), str(src))
        parts = [read_source(files[c], bank, drop_duplicates=drop).respondents for c in countries]
        return pl.concat(parts, how="vertical"), str(src), None
    frame = read_source(src, bank, drop_duplicates=drop).respondents
    have = frame["country"].unique().to_list()
    missing = [c for c in countries if c not in have]
    if missing:
        raise _unknown_countries(missing, have, str(src))
    return frame.filter(pl.col("country").is_in(list(countries))), str(src), None


def check_n(n: int, respondents: pl.DataFrame, countries: Sequence[str], where: str) -> None:
    if n < 1:
        raise ConfigError(f"n {n}: ask for at least one persona per country")
    counts = dict(respondents.group_by("country").len().iter_rows())
    for c in countries:
        have = int(counts.get(c, 0))
        if n > have:
            raise DataError(
                f"n {n} is more than the {have} respondents of {c} in {where}; "
                f"ask for at most {have} personas"
            )


def value_descriptors_path(params: Params, project: Path) -> Path:
    """The study's value descriptor set: what the descriptors stage wrote, else the
    hand-written file the chosen variant names (the static variants need no model)."""
    from valuesim.personas.generators import HANDWRITTEN_FILES, handwritten_source

    generated = project / GENERATED_DESCRIPTORS
    if generated.exists():
        return generated
    variant = params.descriptors.variant
    if variant in HANDWRITTEN_FILES:
        return handwritten_source(variant, under(project, params.descriptors.path))
    from valuesim.artifacts import missing

    raise missing(generated, "descriptors", f"descriptors.variant {variant} is written by a model")


def personas_for(
    params: Params, bank: QuestionBank, respondents: pl.DataFrame, countries: Sequence[str],
    method: str, n: int, project: Path,
) -> pl.DataFrame:
    """The first ``n`` personas per country of ``method``'s kind, sampled as the study samples."""
    from valuesim.methods import persona_kind
    from valuesim.personas import descriptors
    from valuesim.personas.build import build_personas
    from valuesim.personas.sampling import sample_respondents

    kind, nationality = persona_kind(method)
    assert kind is not None
    value_set = descriptors.load(value_descriptors_path(params, project), bank, kind="value")
    socio_set = descriptors.load(
        under(project, params.descriptors.sociodemographic_path), bank, kind="sociodemographic"
    )
    sample = sample_respondents(respondents, list(countries), n, params.personas.seed)
    return build_personas(sample, bank, value_set, socio_set, kinds=[kind], nationality=[nationality])

"""Persona text for sampled respondents.

Kinds (paper sections 4.1-4.2 and the ablations of 5.2):

- ``value``: one descriptor per Inglehart-Welzel item the respondent answered.
- ``sociodemographic``: one descriptor per sociodemographic item answered.
- ``fewshot``: the respondent's raw answers to the persona items, shown as
  question/answer examples in the format of the prompts themselves.

Each kind is built with nationality (a sentence "You live in Japan.", or for fewshot
an extra first example "In which country do you live?") and without. Items the
respondent left missing are omitted and listed in ``missing_items``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import polars as pl

from valuesim import artifacts
from valuesim.errors import ConfigError, DataError
from valuesim.methods import METHODS, PERSONA_KINDS
from valuesim.personas.descriptors import DescriptorSet
from valuesim.prompts import scale_text
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.countries import country_name

FEWSHOT_LEAD = "You gave these answers in a survey:"
SCHEMA: dict[str, pl.DataType] = {
    "persona_id": pl.Utf8(),
    "respondent_id": pl.Utf8(),
    "country": pl.Utf8(),
    "kind": pl.Utf8(),
    "nationality": pl.Boolean(),
    "text": pl.Utf8(),
    "missing_items": pl.List(pl.Utf8()),
}


def check_kind(kind: str) -> str:
    if kind not in PERSONA_KINDS:
        raise ConfigError(f"unknown persona kind {kind!r}; choose from {', '.join(PERSONA_KINDS)}")
    return kind


def persona_id(respondent_id: str, kind: str, nationality: bool) -> str:
    return f"{respondent_id}:{kind}" + ("" if nationality else ":nonat")


def nationality_sentence(country: str) -> str:
    return f"You live in {country_name(country)}."


def _answer_text(item: Item, code: int) -> str:
    for a in item.answers:
        if a.code == code:
            return str(code) if a.label.strip() == str(code) else f"{code}={a.label}"
    raise DataError(f"respondent answer {item.id}={code} is not an answer code of the bank")


def fewshot_example(question: str, scale: str, answer: str) -> str:
    lines = [f"Question: {question}"]
    if scale:
        lines.append(f"Scale: {scale}")
    lines.append(f"Answer: {answer}")
    return "\n".join(lines)


def _describe(
    row: Mapping[str, object], items: Sequence[Item], ds: DescriptorSet
) -> tuple[list[str], list[str]]:
    sentences, missing = [], []
    for item in items:
        value = row[item.id]
        if value is None:
            missing.append(item.id)
        else:
            sentences.append(ds.sentence(item.id, int(value)))  # type: ignore[call-overload]
    return sentences, missing


def persona_text(
    row: Mapping[str, object],
    kind: str,
    nationality: bool,
    bank: QuestionBank,
    value_set: DescriptorSet,
    socio_set: DescriptorSet,
    items: Collection[str] | None = None,
) -> tuple[str, list[str]]:
    """(text, missing item ids) for one respondent row (item id -> code or None).

    ``items`` keeps only those persona items (value and fewshot kinds; the Shapley
    analysis builds personas with items removed); the others are left out as if never
    asked, not listed as missing.
    """
    country = str(row["country"])
    persona_items = [i for i in bank.persona_items if items is None or i.id in items]
    if kind == "fewshot":
        examples, missing = [], []
        if nationality:
            examples.append(
                fewshot_example("In which country do you live?", "", country_name(country))
            )
        for item in persona_items:
            value = row[item.id]
            if value is None:
                missing.append(item.id)
                continue
            examples.append(
                fewshot_example(item.text, scale_text(item), _answer_text(item, int(value)))  # type: ignore[call-overload]
            )
        return "\n\n".join([FEWSHOT_LEAD, *examples]), missing
    if kind == "value":
        sentences, missing = _describe(row, persona_items, value_set)
    elif kind == "sociodemographic":
        sentences, missing = _describe(row, bank.sociodemographic, socio_set)
    else:
        check_kind(kind)
        raise AssertionError("unreachable")
    if nationality:
        sentences.insert(0, nationality_sentence(country))
    return " ".join(sentences), missing


def build_personas(
    sample: pl.DataFrame,
    bank: QuestionBank,
    value_set: DescriptorSet,
    socio_set: DescriptorSet,
    *,
    kinds: Sequence[str] = PERSONA_KINDS,
    nationality: Sequence[bool] = (True, False),
    items: Collection[str] | None = None,
) -> pl.DataFrame:
    """One row per sampled respondent x kind x nationality flag (contract: personas.parquet).

    ``items``: only these persona items are described (default: all); see persona_text.
    """
    for kind in kinds:
        check_kind(kind)
    if items is not None:
        unknown = sorted(set(items) - {i.id for i in bank.persona_items})
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} are not persona items of the question bank")
    needed = {i.id for i in bank.persona_items} | {i.id for i in bank.sociodemographic}
    absent = sorted(needed - set(sample.columns))
    if absent:
        raise DataError(
            f"respondents lack item columns {', '.join(absent)}; rerun the extract stage "
            "with the current question bank"
        )
    rows: list[dict[str, object]] = []
    for row in sample.iter_rows(named=True):
        rid = str(row["respondent_id"])
        for kind in kinds:
            for nat in nationality:
                text, missing = persona_text(row, kind, nat, bank, value_set, socio_set, items)
                rows.append({
                    "persona_id": persona_id(rid, kind, nat), "respondent_id": rid,
                    "country": row["country"], "kind": kind, "nationality": nat,
                    "text": text, "missing_items": missing,
                })
    return pl.DataFrame(rows, schema=SCHEMA)


def write_persona_tables(personas: pl.DataFrame, directory: Path) -> None:
    """Write ``personas.parquet`` plus one table per prompting method.

    A country-level method's table holds one row per country (no persona text), so
    its simulate entry still depends on the selected countries and nothing else.
    """
    write_personas(personas, directory / "personas.parquet")
    countries = sorted(set(personas["country"].to_list()))
    for method in METHODS:
        if method.persona is None:
            table = pl.DataFrame(
                {"persona_id": [f"{c}:{method.name}" for c in countries], "country": countries},
                schema={"persona_id": pl.Utf8, "country": pl.Utf8},
            )
        else:
            table = personas.filter(
                (pl.col("kind") == method.persona) & (pl.col("nationality") == method.nationality)
            )
        write_personas(table, directory / "methods" / f"{method.name}.parquet")


def write_personas(personas: pl.DataFrame, path: Path) -> None:
    """Write atomically: a failed run leaves the previous file, not half of one."""
    artifacts.write_parquet(personas, path)

"""Prompts for the Inglehart-Welzel map items, so Figure 1 can place each method.

The simulate stage asks these besides the target questions (``simulate.map_items``)
and keeps their answers apart (``map_answers.parquet``): they never enter the
target-question metrics. What is asked and how the two indexes are rebuilt from
their source items is in :mod:`valuesim.culturalmap.expectations`.

Which methods: those whose row in :mod:`valuesim.methods` says ``asks_map_items``
(the country-level ones and the sociodemographic personas). ``value`` and ``fewshot``
personas *state* the respondent's answers to the map items, so their map position
would only echo the persona text back (circular); they are not asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from valuesim.culturalmap.expectations import (
    AIMS,
    AUTONOMY_MINUS,
    AUTONOMY_PLUS,
    DIRECT_ITEMS,
    FIRST_AIM,
    SECOND_AIM,
)
from valuesim.llm.types import AnswerDistribution, ChatMessage
from valuesim.methods import get_method
from valuesim.prompts import PromptUnit, prompt_parts
from valuesim.survey.bank import QuestionBank

MAP_ANSWERS_SCHEMA: dict[str, pl.DataType] = {
    "persona_id": pl.Utf8(),
    "country": pl.Utf8(),
    "question": pl.Utf8(),
    "given": pl.Int64(),  # Q155 only: the first choice already answered; else null
    "codes": pl.List(pl.Int64()),
    "probs": pl.List(pl.Float64()),
    "coverage": pl.Float64(),
    "estimator": pl.Utf8(),
    "answer_rule": pl.Utf8(),
    "flag": pl.Utf8(),
}


@dataclass(frozen=True, slots=True)
class MapPrompt:
    """A map-item prompt: the unit to score, the answer codes it offers and, for the
    second choice, the first choice it follows."""

    unit: PromptUnit
    codes: tuple[int, ...]
    given: int | None = None


def second_choice_message(bank: QuestionBank, first: int) -> str:
    """The follow-up turn after answering ``first``: the other three aims (A.1 format)."""
    item = bank.item(SECOND_AIM)
    rest = [a for a in item.answers if a.code != first]
    scale = ", ".join(f"{a.code}={a.label}" for a in rest)
    codes = [str(a.code) for a in rest]
    allowed = ", ".join(codes[:-1]) + f" or {codes[-1]}"
    return f"Question:\n{item.text}\n\nScale: {scale}\n\nRespond with ONLY the single integer ({allowed}):"


def plan_map_prompts(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    countries: Sequence[str],
    guidance: str,
) -> list[MapPrompt]:
    """Every map-item prompt of a method (empty for the circular ones).

    Direct items and the autonomy sources are ordinary prompts; the first aim is
    followed, per possible first choice ``a``, by a conversation in which the model
    has answered ``a`` and is asked the second choice among the other three.
    """
    return [
        MapPrompt(PromptUnit(pid, country, question, (head, *tail), answers), codes, given)
        for pid, country, head, _, row in map_prompt_parts(method, personas, bank, countries, guidance)
        for tail, answers, question, codes, given in row
    ]


#: A head's map prompts after its system message: (the other messages, answers,
#: question, answer codes, first choice given) each.
MapRow = list[tuple[tuple[ChatMessage, ...], tuple[str, ...], str, tuple[int, ...], int | None]]


def map_prompt_parts(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    countries: Sequence[str],
    guidance: str,
) -> Iterator[tuple[str, str, ChatMessage, int | None, MapRow]]:
    """:func:`plan_map_prompts` in parts, as :func:`valuesim.prompts.prompt_parts` gives
    the target prompts: per head its persona_id, country, system message, row key and
    row, one row object per key (what `valuesim plan` counts without building each prompt)."""
    if not get_method(method).asks_map_items:
        return
    asked = [*DIRECT_ITEMS, *AUTONOMY_PLUS, *AUTONOMY_MINUS, FIRST_AIM]
    second = bank.item(SECOND_AIM).codes
    follow_ups = [(ChatMessage("assistant", str(first)), ChatMessage("user", second_choice_message(bank, first)),
                   tuple(c for c in second if c != first), first) for first in AIMS]
    rows: dict[int, MapRow] = {}  # by id of the question row they are made from
    for pid, country, ids, head, key, questions in prompt_parts(method, personas, bank, asked,
                                                                 countries, guidance):
        row = rows.get(id(questions))
        if row is None:
            row = rows[id(questions)] = []
            for question, (user, answers) in zip(ids, questions, strict=True):
                row.append(((user,), answers, question, tuple(bank.item(question).codes), None))
                if question == FIRST_AIM:
                    row += [((user, said, asks), tuple(map(str, rest)), SECOND_AIM, rest, first)
                            for said, asks, rest, first in follow_ups]
        yield pid, country, head, key, row


def map_answers_frame(prompts: Sequence[MapPrompt], results: Sequence[AnswerDistribution]) -> pl.DataFrame:
    """One row per map prompt, in prompt order (``map_answers.parquet``)."""
    if len(prompts) != len(results):
        raise ValueError(f"{len(prompts)} map prompts but {len(results)} results")
    rows = [
        {
            "persona_id": p.unit.persona_id, "country": p.unit.country, "question": p.unit.question,
            "given": p.given, "codes": list(p.codes), "probs": list(d.probs),
            "coverage": d.coverage, "estimator": d.estimator, "answer_rule": d.answer_rule, "flag": d.flag,
        }
        for p, d in zip(prompts, results, strict=True)
    ]
    return pl.DataFrame(rows, schema=MAP_ANSWERS_SCHEMA)

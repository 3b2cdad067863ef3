"""Prompts as the model sees them (paper, appendix A.1).

System message: the guidance; for persona methods followed by a blank line and
``Your persona: {persona}``. User message::

    Question:
    {question}

    Scale: 1=Very important, 2=Rather important, 3=Not very important, 4=Not at all important

    Respond with ONLY the single integer (1-4):

A nominal or binary item (:mod:`valuesim.survey.question_types`) lists its answers as
``Options: 1=Television, 2=Newspapers, ...`` instead of a scale, with the same last line.

The persona comes first and the question last, so all questions of one persona share
a prefix (KV-cache and provider prompt-cache reuse). Guidance wordings are package
data (``valuesim/resources/guidance.yaml``): the 14 templates of the paper's Table 1
verbatim, the default assistant prompt, our generic (no country) wording, and the
country-free wording used by the methods that leave nationality out (a Table 1
template would name the country). Which wording a method uses is its row in
:mod:`valuesim.methods`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

import polars as pl
import yaml

from valuesim.errors import ConfigError, DataError
from valuesim.llm.types import ChatMessage
from valuesim.methods import get_method
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.countries import country_name
from valuesim.survey.question_types import has_scale, listed

GUIDANCE_FILE: Traversable = files("valuesim.resources") / "guidance.yaml"
DEFAULT_GUIDANCE = "social_science"


@dataclass(frozen=True, slots=True)
class PromptUnit:
    """One prompt to score: a persona (or country) and a question."""

    persona_id: str
    country: str
    question: str
    messages: tuple[ChatMessage, ...]
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Guidance:
    default: str
    generic: str
    country_free: str
    persona_prefix: str
    templates: Mapping[str, str]


@cache
def load_guidance(path: Traversable = GUIDANCE_FILE) -> Guidance:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Guidance(
            default=raw["default"], generic=raw["generic"], country_free=raw["country_free"],
            persona_prefix=raw["persona_prefix"], templates=dict(raw["templates"]),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DataError(f"guidance file {path} is unreadable or incomplete: {exc}") from exc


def guidance_keys() -> tuple[str, ...]:
    return tuple(load_guidance().templates)


def check_guidance(key: str) -> str:
    keys = guidance_keys()
    if key not in keys:
        raise ConfigError(f"unknown guidance key {key!r} (prompts.guidance); choose from {', '.join(keys)}")
    return key


def system_message(method: str, guidance: str, country: str, persona: str | None = None) -> str:
    m = get_method(method)
    check_guidance(guidance)
    g = load_guidance()
    if m.opening == "default":
        return g.default
    if m.opening == "generic":
        return g.generic
    text = g.templates[guidance].replace("{country}", country_name(country)) if m.nationality else g.country_free
    if m.persona is None:
        return text
    if persona is None:
        raise DataError(f"method {method} needs a persona")
    return text + g.persona_prefix + persona


def scale_text(item: Item) -> str:
    """``1=Very important, 2=Rather important, ...``; unlabelled points are left out.

    WVS labels only the ends of its 10-point scales (the codebook's label for 5 is
    "5"), so "5=5" would add nothing; the paper's Table 2 shows such scales the same
    way ("1 = Never justifiable, 10 = Always justifiable").
    """
    return ", ".join(f"{a.code}={a.label}" for a in item.answers if a.label.strip() != str(a.code))


def options_text(item: Item, offset: int = 0) -> str:
    """``1=Television, 2=Newspapers, ...``: a nominal or binary item's answers, each
    labelled, listed from the ``offset``-th on (``order: rotate``; 0: the file's order)."""
    return ", ".join(f"{a.code}={a.label}" for a in listed(item.answers, offset))


def user_message(item: Item, offset: int = 0) -> str:
    """The question, its answers and the answer format. An ordinal item's answers are a
    ``Scale:``; a nominal or binary item's are ``Options:`` (unordered: calling them a
    scale would suggest an order), listed from the ``offset``-th answer on. The answer
    format is the same for every type, so the exact answer scoring is too."""
    if item.numeric:
        raise DataError(f"item {item.id} is numeric and has no answer scale; it cannot be a question")
    parts = [f"Question:\n{item.text}"]
    if not has_scale(item):
        parts.append(f"Options: {options_text(item, offset)}")
    elif scale := scale_text(item):
        parts.append(f"Scale: {scale}")
    parts.append(f"Respond with ONLY the single integer ({item.min}-{item.max}):")
    return "\n\n".join(parts)


def answer_strings(item: Item) -> tuple[str, ...]:
    """The replies a model may give, in scale order: ("1", ..., "10")."""
    return tuple(str(c) for c in item.codes)


def render(
    method: str, item: Item, *, country: str, guidance: str = DEFAULT_GUIDANCE, persona: str | None = None,
    offset: int = 0,
) -> tuple[ChatMessage, ChatMessage]:
    """One prompt's messages; ``offset``: the persona's place among its country's
    personas, from which an ``order: rotate`` item lists its answers (:func:`plan_prompts`)."""
    return (
        ChatMessage("system", system_message(method, guidance, country, persona)),
        ChatMessage("user", user_message(item, offset if item.order == "rotate" else 0)),
    )


def plan_prompts(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    question_ids: Sequence[str],
    countries: Sequence[str],
    guidance: str = DEFAULT_GUIDANCE,
) -> list[PromptUnit]:
    """Every prompt of one method, grouped so one persona's questions are consecutive.

    default, generic and country give one prompt per country and question
    (persona_id ``"{country}:{method}"``); persona methods one per persona of that
    kind and nationality flag. All inputs are checked before anything is rendered.
    """
    units: list[PromptUnit] = []
    for pid, c, ids, row in _prompt_rows(method, personas, bank, question_ids, countries, guidance):
        units += [PromptUnit(persona_id=pid, country=c, question=q, messages=messages, answers=answers)
                  for q, (messages, answers) in zip(ids, row, strict=True)]
    return units


def plan_prompt_messages(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    question_ids: Sequence[str],
    countries: Sequence[str],
    guidance: str = DEFAULT_GUIDANCE,
) -> list[tuple[tuple[ChatMessage, ...], tuple[str, ...]]]:
    """The (messages, answers) of :func:`plan_prompts`, in its order, without the
    PromptUnit around each: what `valuesim plan` counts (a paper-scale method has a
    million prompts, and building a unit for each was most of the plan's time)."""
    pairs: list[tuple[tuple[ChatMessage, ...], tuple[str, ...]]] = []
    for _, _, _, row in _prompt_rows(method, personas, bank, question_ids, countries, guidance):
        pairs += row
    return pairs


def _prompt_rows(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    question_ids: Sequence[str],
    countries: Sequence[str],
    guidance: str,
) -> Iterator[tuple[str, str, list[str], list[tuple[tuple[ChatMessage, ...], tuple[str, ...]]]]]:
    """Per head: its persona_id, country, question ids and (messages, answers), in prompt
    order; every input is checked before the first head is yielded."""
    for pid, c, ids, head, _, row in prompt_parts(method, personas, bank, question_ids, countries,
                                                  guidance):
        yield pid, c, ids, [((head, user), answers) for user, answers in row]


#: A head's questions: (user message, answers) per question, in question order.
QuestionRow = list[tuple[ChatMessage, tuple[str, ...]]]


def prompt_parts(
    method: str,
    personas: pl.DataFrame,
    bank: QuestionBank,
    question_ids: Sequence[str],
    countries: Sequence[str],
    guidance: str = DEFAULT_GUIDANCE,
) -> Iterator[tuple[str, str, list[str], ChatMessage, int | None, QuestionRow]]:
    """The prompts of :func:`plan_prompts` in parts: per head (persona or country), its
    persona_id, country, question ids, system message, row key and row; the head's
    prompts are ``((system, user), answers)`` for each ``(user, answers)`` of the row.

    Heads with the same row key share one row object (the key is None when no item
    rotates its answers, else the head's rotation offset), so a plan can count a
    million prompts from a few rows and many heads without building each prompt.
    Every input is checked before the first head is yielded.
    """
    m = get_method(method)
    kind, nationality = m.persona, m.nationality
    check_guidance(guidance)
    items = [bank.item(q) for q in question_ids]
    for item in items:
        if item.numeric:
            raise DataError(f"question {item.id} is numeric and cannot be asked with a scale")
    for c in countries:
        country_name(c)
    questions = [(item, user_message(item), answer_strings(item)) for item in items]
    rotated = any(item.order == "rotate" for item in items)

    # (persona_id, country, system text) in prompt order
    heads: list[tuple[str, str, str]] = []
    if kind is None:
        heads = [(f"{c}:{method}", c, system_message(method, guidance, c)) for c in countries]
    else:
        chosen = personas.filter(
            (pl.col("kind") == kind) & (pl.col("nationality") == nationality)
            & pl.col("country").is_in(list(countries))
        )
        for c in countries:
            rows = chosen.filter(pl.col("country") == c)
            if rows.height == 0:
                flag = "with" if nationality else "without"
                raise DataError(
                    f"no {kind} personas {flag} nationality for {c}; rerun the personas stage "
                    "(dvc repro personas) for the selected countries"
                )
            heads += [
                (pid, c, system_message(method, guidance, c, text))
                for pid, text in zip(rows["persona_id"], rows["text"], strict=True)
            ]
    # order: rotate: the k-th head of a country lists the answers from the (k mod n)-th on
    offsets = [0] * len(heads)
    if rotated:
        seen: dict[str, int] = {}
        for i, (_, c, _) in enumerate(heads):
            offsets[i] = seen.get(c, 0)
            seen[c] = offsets[i] + 1
    # One ChatMessage per system text and per (question, offset), shared by every prompt
    # that has it: messages are frozen, and a paper-scale method has a million prompts but
    # only its heads' and questions' texts (building two messages per prompt was most of
    # `valuesim plan`'s time and memory).
    # (only a rotated item's message depends on the head: it is made per offset)
    ids = [item.id for item in items]
    rows_by_key: dict[int | None, QuestionRow] = {}

    def row_for(key: int | None) -> QuestionRow:
        if (found := rows_by_key.get(key)) is None:
            found = rows_by_key[key] = [
                (ChatMessage("user", user if key is None or item.order != "rotate"
                             else user_message(item, key)), answers)
                for item, user, answers in questions]
            if key is not None and (plain := rows_by_key.get(None)) is not None:
                # the rows of all offsets share their unrotated items' messages
                found[:] = [p if item.order != "rotate" else f
                            for item, p, f in zip(items, plain, found, strict=True)]
        return found

    if rotated:
        row_for(None)  # the unrotated items' messages, made once
    for (pid, c, system), offset in zip(heads, offsets, strict=True):
        key = offset if rotated else None
        yield pid, c, ids, ChatMessage("system", system), key, row_for(key)

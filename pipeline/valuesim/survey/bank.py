"""The question bank: every item the study uses, with its answers in scale order.

The bank is data (``data/questions/wvs7.yaml``); this module is its typed loader.
Roles: ``target`` (the questions the models answer, paper Table 2; a nominal or
binary target is scored by total variation and Jensen-Shannon, not by a mean), ``persona``
(the ten Inglehart-Welzel items that value personas are built from) and
``sociodemographic`` (items for sociodemographic personas). An item can be both
a target and a persona item in principle, so ``roles`` is a list.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valuesim import safe_yaml
from valuesim.errors import ConfigError, DataError
from valuesim.names import clip, question_id_problem, shorten

Role = Literal["target", "persona", "sociodemographic"]
# How an item's answers relate (valuesim.survey.question_types): ``ordinal`` answers lie
# on a scale (means, variances, tilts and intervals apply); ``nominal`` ones are
# unordered categories and ``binary`` ones two options, summarised by shares only.
QuestionType = Literal["ordinal", "nominal", "binary"]
AnswerOrder = Literal["fixed", "rotate"]
MissingReason = Literal["dont_know", "no_answer", "not_applicable", "not_asked", "missing"]
# Answer and missing codes are small integers (WVS-7: -5 to 10; other surveys use 3- or
# 4-digit codes); a billion is far beyond any, and keeps codes within the Int64 columns
# and exact float sums downstream (10**23 in a question file was a polars traceback).
MAX_CODE = 1_000_000_000
Code = Annotated[int, Field(ge=-MAX_CODE, le=MAX_CODE)]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    label: str = Field(max_length=safe_yaml.MAX_LABEL)


class Item(BaseModel):
    """One survey variable.

    ``answers`` are the substantive answers in scale order; the scale values used for
    means and distances are the codes themselves. ``missing`` maps the codes that
    mean "no substantive answer" to a reason (taken from the codebook per variable:
    Y003 has valid negative codes, and Q254 code 5 "I am not [nationality]" is not a
    point on the pride scale). ``numeric`` items (age) have no closed answer set.
    ``derived_from`` names source items for derived indexes (Y002, Y003).
    ``type``: ``ordinal`` (the default, every WVS item of the bank), ``nominal``
    (unordered categories: the codes only name them) or ``binary`` (two options).
    ``order``: ``rotate`` lists a nominal or binary item's answers rotated by one
    place per persona (:mod:`valuesim.survey.question_types`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # a name (valuesim.names): it becomes file names (new_<id>.png)
    roles: list[Role]
    label: str = Field(max_length=safe_yaml.MAX_LABEL)  # short name, e.g. "Importance of God"
    text: str = Field(max_length=safe_yaml.MAX_QUESTION_TEXT)  # the wording shown to the model
    answers: list[Answer] = Field(default_factory=list)
    missing: dict[Code, MissingReason] = Field(default_factory=dict)
    numeric: bool = False
    derived_from: list[str] = Field(default_factory=list)
    dimension: Literal["secular", "self_expression"] | None = None
    # questionnaire section, when the Q-number does not say it (valuesim.survey.batteries)
    battery: str | None = None
    type: QuestionType = "ordinal"
    # "rotate": the prompt lists a nominal/binary item's answers rotated per persona
    order: AnswerOrder = "fixed"

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        problem = question_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check(self) -> Item:
        codes = [a.code for a in self.answers]
        if not self.numeric and len(codes) < 2:
            raise ValueError(f"item {self.id} needs at least two answers")
        if len(set(codes)) != len(codes):
            raise ValueError(f"item {self.id} has duplicate answer codes")
        if codes != sorted(codes):
            raise ValueError(f"item {self.id}: answers must be in ascending code order")
        if self.type == "binary" and len(codes) != 2:
            raise ValueError(f"item {self.id}: a binary item has exactly two answers, not {len(codes)}")
        if self.order == "rotate" and self.type == "ordinal":
            raise ValueError(f"item {self.id}: order rotate is for nominal or binary items; a "
                             "scale is always listed in its order")
        clash = set(codes) & set(self.missing)
        if clash:
            raise ValueError(f"item {self.id}: codes {sorted(clash)} are both answers and missing")
        return self

    @property
    def codes(self) -> list[int]:
        return [a.code for a in self.answers]

    @property
    def min(self) -> int:
        return self.codes[0]

    @property
    def max(self) -> int:
        return self.codes[-1]

    @property
    def range(self) -> int:
        return self.max - self.min


class QuestionBank(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    source: str
    items: list[Item]

    @model_validator(mode="after")
    def _unique(self) -> QuestionBank:
        ids = [i.id for i in self.items]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate item ids: {sorted(dup)}")
        # nominal and binary targets are scored by total variation and Jensen-Shannon
        # (valuesim.analysis.unordered_scores); value personas and the cultural map place
        # a respondent on each persona item's scale, which unordered options lack
        unordered = [i.id for i in self.items if i.type != "ordinal" and "persona" in i.roles]
        if unordered:
            raise ValueError(f"items {unordered} are not ordinal: personas are built from "
                             "ordinal items only (their answers are placed on a scale); drop "
                             "their type or their persona role")
        return self

    @cached_property
    def by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    def item(self, item_id: str) -> Item:
        try:
            return self.by_id[item_id]
        except KeyError:
            raise DataError(
                f"unknown question id {shorten(item_id)}; see data/questions/wvs7.yaml for the ids"
            ) from None

    def with_role(self, role: Role) -> list[Item]:
        return [i for i in self.items if role in i.roles]

    @property
    def targets(self) -> list[Item]:
        return self.with_role("target")

    @property
    def persona_items(self) -> list[Item]:
        return self.with_role("persona")

    @property
    def sociodemographic(self) -> list[Item]:
        return self.with_role("sociodemographic")

    @property
    def unordered(self) -> dict[str, str]:
        """id -> type of every nominal or binary item: no mean, no tilt, scored by shares."""
        return {i.id: i.type for i in self.items if i.type != "ordinal"}


def unordered_items(path: str | Path) -> dict[str, str]:
    """:attr:`QuestionBank.unordered` of the bank at ``path``; empty for a study
    assembled without the bank (every item then ordinal, as before types existed)."""
    return load_bank(path).unordered if Path(path).exists() else {}


def load_bank(path: str | Path = "data/questions/wvs7.yaml") -> QuestionBank:
    p = Path(path)
    if not p.exists():
        raise DataError(f"question bank {p} not found; check data.questions in params.yaml")
    try:  # 5 MB, 20 levels, 2,000 characters a value, aliases within a budget (valuesim.safe_yaml)
        raw = safe_yaml.load_file(p, safe_yaml.QUESTION_BANK)
    except safe_yaml.YamlError as exc:
        raise ConfigError(f"question bank {exc}") from exc
    try:
        return QuestionBank.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(clip(str(x), 40) for x in err["loc"])
        where = f"{loc}: " if loc else ""  # a check of the whole bank has no location
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"question bank {p} is invalid: {where}{msg}") from exc

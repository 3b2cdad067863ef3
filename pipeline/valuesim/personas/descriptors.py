"""Descriptor sets: one second-person sentence per survey item and answer.

A descriptor set is data (``data/descriptors/*.yaml``). ``kind: value`` sets cover the
bank's persona items (the Inglehart-Welzel items), ``kind: sociodemographic`` sets cover
its sociodemographic items. Numeric items (age) take a ``template`` with ``{value}``
instead of one sentence per answer. A set is validated against the bank before use, so
a set that misses an answer fails before any persona is built or any model is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valuesim import safe_yaml
from valuesim.artifacts import write_text
from valuesim.errors import DataError
from valuesim.names import clip, shorten
from valuesim.survey.bank import Item, QuestionBank

DescriptorKind = Literal["value", "sociodemographic"]
DESCRIPTOR_KINDS: tuple[str, ...] = ("value", "sociodemographic")
# How many problems a validation message lists before it says "and N more"; the
# message must stay one line, and an LLM generator gets it back to fix its reply.
_MAX_LISTED = 12
# One sentence of a persona (README, "Limits"); ten of them make a value persona.
Sentence = Annotated[str, Field(max_length=safe_yaml.MAX_SENTENCE)]


class NumericDescriptor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template: Sentence  # e.g. "You are {value} years old."

    def render(self, value: int) -> str:
        return self.template.replace("{value}", str(value))


class DescriptorSet(BaseModel):
    """Sentences by item id and answer code (numeric items by template)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    name: str = Field(max_length=safe_yaml.MAX_LABEL)
    kind: DescriptorKind
    items: dict[str, dict[int, Sentence]] = Field(default_factory=dict)
    numeric: dict[str, NumericDescriptor] = Field(default_factory=dict)
    # provenance of generated sets (variant, generator, model); free-form
    meta: dict[str, Any] = Field(default_factory=dict)

    def sentence(self, item_id: str, value: int) -> str:
        """The descriptor for one answer; the set must have been validated."""
        if item_id in self.numeric:
            return self.numeric[item_id].render(value)
        try:
            return self.items[item_id][value]
        except KeyError:
            raise DataError(
                f"descriptor set {shorten(self.name)} has no sentence for {clip(item_id)}={value}; "
                "the respondents hold a code the question bank does not list"
            ) from None


def covered_items(bank: QuestionBank, kind: str) -> list[Item]:
    """The bank items a descriptor set of this kind must cover, in bank order."""
    if kind == "value":
        return bank.persona_items
    if kind == "sociodemographic":
        return bank.sociodemographic
    raise DataError(f"unknown descriptor kind {kind!r}; use one of {', '.join(DESCRIPTOR_KINDS)}")


def problems(ds: DescriptorSet, bank: QuestionBank) -> list[str]:
    """Everything wrong with a set relative to the bank (empty when valid)."""
    out: list[str] = []
    expected = covered_items(bank, ds.kind)
    wanted = {i.id for i in expected}
    for unknown in sorted((set(ds.items) | set(ds.numeric)) - wanted):
        out.append(f"unknown item {clip(unknown)} (not a {ds.kind} item of the bank)")
    for item in expected:
        if item.numeric:
            num = ds.numeric.get(item.id)
            if num is None:
                out.append(f"item {item.id} ({item.label}) is missing; give it a numeric template")
            elif "{value}" not in num.template:
                out.append(f"item {item.id}: template has no {{value}}")
            elif not num.template.startswith("You"):
                out.append(f"item {item.id}: template does not start with 'You'")
            continue
        sentences = ds.items.get(item.id)
        if sentences is None:
            out.append(f"item {item.id} ({item.label}) is missing")
            continue
        for ans in item.answers:
            text = sentences.get(ans.code)
            if text is None:
                out.append(f"item {item.id} has no descriptor for answer {ans.code} ({ans.label})")
            elif not text.strip().startswith("You"):
                out.append(f"item {item.id} answer {ans.code}: descriptor does not start with 'You'")
        for extra in sorted(set(sentences) - set(item.codes)):
            out.append(f"item {item.id} has a descriptor for unknown answer code {extra}")
    return out


def validate(ds: DescriptorSet, bank: QuestionBank, *, origin: str) -> DescriptorSet:
    """Return ``ds`` if it covers the bank exactly, else raise a one-line DataError."""
    found = problems(ds, bank)
    if found:
        listed = "; ".join(found[:_MAX_LISTED])
        more = f"; and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
        raise DataError(
            f"descriptor set {origin} is invalid: {listed}{more}; "
            "every item and every answer needs one sentence starting with 'You'"
        )
    return ds


def parse(raw: object, *, origin: str) -> DescriptorSet:
    """Schema-check parsed YAML (not yet against the bank)."""
    if not isinstance(raw, dict):
        raise DataError(f"descriptor set {origin} must be a YAML mapping with an 'items' key")
    try:
        return DescriptorSet.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        # the keys come from the file: each cut short, like any value shown in an error
        loc = ".".join(clip(str(x), 40) for x in err["loc"])
        raise DataError(f"descriptor set {origin}: {loc}: {err['msg']}") from exc


def load(path: str | Path, bank: QuestionBank, *, kind: str) -> DescriptorSet:
    """Load a descriptor set from YAML and validate it against the bank.

    Read within :data:`valuesim.safe_yaml.DESCRIPTOR_SET` (1 MB, no aliases, 20
    levels, 2,000 characters a value); a sentence has at most 1,000 characters."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"descriptor set {p} not found; check the descriptors section of params.yaml")
    try:
        raw = safe_yaml.load_file(p, safe_yaml.DESCRIPTOR_SET)
    except safe_yaml.YamlError as exc:
        raise DataError(f"descriptor set {exc}") from exc
    ds = parse(raw, origin=str(p))
    if ds.kind != kind:
        raise DataError(f"descriptor set {p} has kind {ds.kind!r}, expected {kind!r}")
    return validate(ds, bank, origin=str(p))


def dump(ds: DescriptorSet, path: str | Path) -> None:
    """Write a set as YAML, atomically (no half-written file on failure)."""
    body = yaml.safe_dump(
        ds.model_dump(mode="python"), allow_unicode=True, sort_keys=False, width=10_000
    )
    write_text(Path(path), body)

"""Descriptor generators: where a value descriptor set comes from.

Built-in generators, registered through the same ``register_descriptor_generators``
hook as third-party ones:

- ``static``: a hand-written YAML file (``descriptors.path`` for ``handwritten``, the
  contrast sets beside it for ``handwritten_nohedge`` and ``handwritten_bare``).
- ``llm``: asks a registered provider that can generate text to write the set with
  one of the paper's Table 3 prompts (package data
  ``valuesim/resources/generation_prompts.yaml``),
  validates the reply against the question bank and, when it is invalid, sends the
  validation error back and retries up to ``descriptors.max_retries`` times. Its
  text generator comes in the request (:mod:`valuesim.personas.generation` builds
  it from the registry), so this module never looks providers up.

This module is a built-in plugin, loaded whenever the plugin manager is, so it must
import cheaply: no provider SDK, no torch.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

import yaml

from valuesim import safe_yaml
from valuesim.contracts import (
    DescriptorGeneratorFactory,
    GenerationRequest,
    TextGenerator,
    TransientProviderError,
)
from valuesim.errors import ConfigError, DataError, ProviderError
from valuesim.hookspecs import hookimpl
from valuesim.llm import interrupt
from valuesim.llm.api_support import ANNOUNCE_WAIT_S, DEFAULT_TIMEOUT_S
from valuesim.llm.types import ChatMessage
from valuesim.personas import descriptors
from valuesim.personas.descriptors import DescriptorSet
from valuesim.survey.bank import QuestionBank

# Package data, so a non-editable install finds the prompts too.
GENERATION_PROMPTS = "generation_prompts.yaml"
HANDWRITTEN = "handwritten"
# The hand-written variants and their file: None is ``descriptors.path`` itself, a
# name is a file in the same directory. They need no model, so variant comparisons
# run offline; the generated variants are the generation prompts.
HANDWRITTEN_FILES: Mapping[str, str | None] = {
    HANDWRITTEN: None,
    "handwritten_nohedge": "value_nohedge_handwritten.yaml",
    "handwritten_bare": "value_bare_handwritten.yaml",
}
# Transient provider failures (429, 5xx, timeouts) are retried this often before the
# generator gives up; they are not the model's fault, so they do not use up
# descriptors.max_retries, which counts invalid replies.
TRANSIENT_ATTEMPTS = 4
MAX_TOKENS = 4096


@dataclass(frozen=True)
class GenerationPrompts:
    system: str
    variants: Mapping[str, str]
    format: str
    retry: str


@cache
def load_generation_prompts(path: Path | None = None) -> GenerationPrompts:
    """The Table 3 prompts: the shipped package data, or ``path`` when given."""
    where = path if path is not None else files("valuesim.resources").joinpath(GENERATION_PROMPTS)
    try:
        raw = yaml.safe_load(where.read_text(encoding="utf-8"))
        return GenerationPrompts(
            system=raw["system"], variants=dict(raw["variants"]),
            format=raw["format"], retry=raw["retry"],
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DataError(f"generation prompts {where} are unreadable or incomplete: {exc}") from exc


def variants() -> tuple[str, ...]:
    """Every descriptor variant: the hand-written sets and the generation prompts."""
    return (*HANDWRITTEN_FILES, *load_generation_prompts().variants)


def handwritten_source(variant: str, path: str | Path) -> Path:
    """The YAML file of a hand-written variant, given ``descriptors.path``."""
    name = HANDWRITTEN_FILES[variant]
    return Path(path) if name is None else Path(path).with_name(name)


class StaticGenerator:
    name = "static"

    def generate(self, request: GenerationRequest) -> DescriptorSet:
        if request.source is None:
            raise ConfigError("the static descriptor generator needs descriptors.path")
        return descriptors.load(request.source, request.bank, kind="value")


def items_block(bank: QuestionBank) -> str:
    """The persona items as the generator sees them: id, question, code=label."""
    blocks = []
    for item in bank.persona_items:
        answers = "\n".join(f"  {a.code} = {a.label}" for a in item.answers)
        blocks.append(f"{item.id}: {item.text}\n{answers}")
    return "\n\n".join(blocks)


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n```\s*$", re.DOTALL)


def parse_reply(reply: str, bank: QuestionBank, *, name: str, meta: dict[str, object]) -> DescriptorSet:
    """Turn a model reply into a validated set; DataError says what is wrong."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:  # models add code fences even when told not to
        text = fenced.group(1)
    try:  # the limits of a descriptor file: no aliases, 20 levels, 2,000 characters a value
        raw = safe_yaml.load_text(text, safe_yaml.DESCRIPTOR_REPLY, "the reply")
    except safe_yaml.YamlError as exc:
        raise DataError(str(exc)) from exc
    if isinstance(raw, dict) and isinstance(raw.get("items"), dict):
        raw = raw["items"]
    if not isinstance(raw, dict):
        raise DataError("the reply is not a YAML mapping from item id to answer code to sentence")
    ds = descriptors.parse({"name": name, "kind": "value", "items": raw, "meta": meta}, origin="reply")
    return descriptors.validate(ds, bank, origin="reply")


class LLMGenerator:
    name = "llm"

    def generate(self, request: GenerationRequest) -> DescriptorSet:
        prompts = load_generation_prompts()
        if request.variant not in prompts.variants:
            raise ConfigError(
                f"descriptor variant {request.variant!r} has no generation prompt; "
                f"use one of {', '.join(prompts.variants)}"
            )
        if request.model is None or request.model_name is None:
            raise ConfigError("the llm descriptor generator needs descriptors.generator_model")
        provider = request.text_generator
        if provider is None:
            raise ConfigError(
                "the llm descriptor generator needs a text generator; build the request with "
                "valuesim.personas.generation.request_from_params"
            )
        messages: list[ChatMessage] = [
            ChatMessage("system", prompts.system),
            ChatMessage(
                "user",
                prompts.variants[request.variant]
                + "\n\n"
                + prompts.format.replace("{items}", items_block(request.bank)),
            ),
        ]
        meta: dict[str, object] = {
            "variant": request.variant, "generator": self.name, "model": request.model_name,
            "provider": request.model.provider, "provider_model": request.model.model,
        }
        attempts = request.max_retries + 1
        last: DataError | None = None
        for _ in range(attempts):
            reply = _generate_with_backoff(provider, messages)
            try:
                return parse_reply(reply, request.bank, name=request.variant, meta=meta)
            except DataError as exc:
                last = exc
                messages += [
                    ChatMessage("assistant", reply),
                    ChatMessage("user", prompts.retry.replace("{error}", str(exc))),
                ]
        raise ProviderError(
            f"model {request.model_name!r} gave no valid {request.variant} descriptor set in "
            f"{attempts} attempts (last problem: {last}); raise descriptors.max_retries or "
            "choose another descriptors.generator_model"
        )


def _generate_with_backoff(provider: TextGenerator, messages: list[ChatMessage]) -> str:
    for attempt in range(TRANSIENT_ATTEMPTS):
        try:
            return provider.generate(tuple(messages), max_tokens=MAX_TOKENS)
        except TransientProviderError as exc:
            if attempt == TRANSIENT_ATTEMPTS - 1:
                raise ProviderError(
                    f"descriptor generation kept failing after {TRANSIENT_ATTEMPTS} tries: {exc}; "
                    "try again later"
                ) from exc
            wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
            # A server's Retry-After is capped like the engine's (at the default call
            # timeout here), and a long wait is announced rather than sat through silently.
            wait = min(max(wait, 0.0), DEFAULT_TIMEOUT_S)
            if wait > ANNOUNCE_WAIT_S:
                print(f"descriptor generation: {str(exc)[:200]}; waiting {wait:.0f} s before "
                      f"try {attempt + 2} of {TRANSIENT_ATTEMPTS}", file=sys.stderr, flush=True)
            interrupt.sleep(wait)  # ends at once on Ctrl-C
    raise AssertionError("unreachable")


@hookimpl
def register_descriptor_generators(register: Callable[[DescriptorGeneratorFactory], None]) -> None:
    register(StaticGenerator())
    register(LLMGenerator())

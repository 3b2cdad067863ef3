"""The plugin contracts: what a provider or descriptor-generator plugin implements.

Everything a plugin author needs is re-exported from :mod:`valuesim` itself; this
module only states the shapes. It imports nothing but the request/result types, so
``hookspecs`` (and any plugin) can import it without pulling in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from valuesim.llm.types import AnswerDistribution, Capabilities, ChatMessage, ScoreRequest

if TYPE_CHECKING:
    from valuesim.config import ModelSpec
    from valuesim.personas.descriptors import DescriptorSet
    from valuesim.survey.bank import QuestionBank


@runtime_checkable
class Provider(Protocol):
    """One loaded model. ``score`` is the only method the engine needs.

    Optional attribute ``local: bool`` (default False): a provider that computes
    in-process (the transformers provider) sets it, and the engine then runs one
    chunk at a time and never times a chunk out (a slow chunk there is work, not a
    hung server). Remote providers get ``spec.concurrency`` chunks in flight and a
    watchdog of ``simulate.timeout_s`` per call.
    """

    name: str
    model: str
    revision: str | None
    capabilities: Capabilities

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        """Return one distribution per request, in order.

        Raise :class:`valuesim.errors.ProviderError` for permanent failures; raise
        :class:`TransientProviderError` for failures worth retrying (429, 5xx,
        timeouts) so the engine can back off.
        """
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """A provider that can also write free text (descriptor generation needs one)."""

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str: ...


class TransientProviderError(Exception):
    """Worth retrying. ``retry_after`` (seconds) is honoured when set."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderFactory(Protocol):
    """What ``register_providers`` registers: cheap to build, imports its SDK in ``create``.

    Optional attribute ``options``: the provider's
    :class:`~valuesim.llm.provider_options.ProviderOptions` subclass. The engine reads
    it, without creating the provider, to keep the options its fields declare as
    transport (``transport(...)``: timeouts, polling) out of the response cache key;
    every other option is part of the key. A factory without it is keyed as if it
    declared :class:`~valuesim.llm.provider_options.BatchOptions` (``timeout_s``,
    ``api_key_env``, ``batch_poll_s``, ``batch_wait_s`` out, everything else in).

    Optional method ``capabilities_for(spec) -> Capabilities``: what the factory offers
    for one spec, where its options unlock more than ``capabilities`` says (the openai
    plugin's ``server: vllm`` gives exact ``logprobs``); the engine picks the default
    estimator from it (:func:`valuesim.llm.engine.spec_capabilities`).
    """

    name: str
    package: str  # distribution that registered it, for `valuesim providers`
    capabilities: Capabilities

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        """Load the model. ``state_dir`` is a private, persistent directory (inside the
        response cache) for things like converted weights or pending batch ids."""
        ...


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a descriptor generator may need; a generator uses what applies to it.

    ``text_generator`` is handed in by whoever built the request (the registry side),
    so a generator never looks providers up itself; it loads its model on first use.
    """

    bank: QuestionBank
    variant: str  # a handwritten* variant or a generation prompt variant (composable, ...)
    source: Path | None = None  # static: the YAML file to load
    model_name: str | None = None  # llm: name of the entry under `models`
    model: ModelSpec | None = None  # llm: its spec
    max_retries: int = 3
    state_dir: Path = Path(".valuesim-cache") / "descriptors"
    text_generator: TextGenerator | None = None


class DescriptorGeneratorFactory(Protocol):
    """What ``register_descriptor_generators`` registers."""

    name: str

    def generate(self, request: GenerationRequest) -> DescriptorSet:
        """Return a value descriptor set validated against ``request.bank``.

        Raise ConfigError for bad requests (before any model call), DataError for bad
        files and ProviderError when a model fails for good.
        """
        ...

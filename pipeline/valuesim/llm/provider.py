"""What a provider implements, and the factory a plugin registers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from valuesim.llm.types import AnswerDistribution, Capabilities, ChatMessage, ScoreRequest

if TYPE_CHECKING:
    from valuesim.config import ModelSpec


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
    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str: ...


class TransientProviderError(Exception):
    """Worth retrying. ``retry_after`` (seconds) is honoured when set."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderFactory(Protocol):
    name: str
    package: str  # distribution that registered it, for `valuesim providers`
    capabilities: Capabilities

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        """Load the model. ``state_dir`` is a private, persistent directory (inside the
        response cache) for things like converted weights or pending batch ids."""
        ...

"""valuesim provider plugin: Google GenAI (Gemini API) with response log-probabilities.

The ``google-genai`` SDK is imported when a provider is created, not when providers
are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim import hookimpl
from valuesim.llm.types import Capabilities

if TYPE_CHECKING:
    from valuesim.config import ModelSpec
    from valuesim.llm.provider import Provider, ProviderFactory

__all__ = ["GoogleFactory", "register_providers"]


class GoogleFactory:
    name = "google"
    package = "valuesim-google"
    # answer_start is all that two positions of top-k can estimate
    capabilities = Capabilities(
        top_logprobs=20, sampling=True, text_generation=True, answer_rules=("answer_start",)
    )

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        from valuesim_google.provider import GoogleProvider

        return GoogleProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(GoogleFactory())

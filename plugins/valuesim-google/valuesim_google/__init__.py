"""valuesim provider plugin: Google GenAI (Gemini API) with response log-probabilities.

Listing providers imports only this module (and ``valuesim``); the ``google-genai``
SDK is imported when a provider is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim import Capabilities, hookimpl
from valuesim_google.options import GoogleOptions

if TYPE_CHECKING:
    from valuesim import ModelSpec, Provider, ProviderFactory

__all__ = ["GoogleFactory", "GoogleOptions", "register_providers"]


class GoogleFactory:
    name = "google"
    package = "valuesim-google"
    options = GoogleOptions
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

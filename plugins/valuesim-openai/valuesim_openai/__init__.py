"""valuesim provider plugin: OpenAI and OpenAI-compatible chat-completions servers.

Listing providers imports only this module; the ``openai`` SDK is imported when a
provider is created.
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

__all__ = ["OpenAIFactory", "register_providers"]


class OpenAIFactory:
    name = "openai"
    package = "valuesim-openai"
    # The widest any model offers; a provider reports its own model's flags.
    # answer_start is all that two positions of top-k can estimate
    capabilities = Capabilities(
        top_logprobs=20, sampling=True, text_generation=True, batch_api=True,
        answer_rules=("answer_start",),
    )

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        from valuesim_openai.provider import OpenAIProvider

        return OpenAIProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(OpenAIFactory())

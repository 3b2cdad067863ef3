"""valuesim provider plugin: OpenAI and OpenAI-compatible chat-completions servers.

Listing providers imports only this module (and ``valuesim``); the ``openai`` SDK is
imported when a provider is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim import Capabilities, hookimpl
from valuesim_openai.options import EXACT_SERVERS, OpenAIOptions

if TYPE_CHECKING:
    from valuesim import ModelSpec, Provider, ProviderFactory

__all__ = ["EXACT_SERVERS", "OpenAIFactory", "OpenAIOptions", "register_providers"]


class OpenAIFactory:
    name = "openai"
    package = "valuesim-openai"
    options = OpenAIOptions
    # The widest any model offers; a provider reports its own model's flags.
    # answer_start is all that two positions of top-k can estimate
    capabilities = Capabilities(
        top_logprobs=20, sampling=True, text_generation=True, batch_api=True,
        answer_rules=("answer_start",),
    )

    def capabilities_for(self, spec: ModelSpec) -> Capabilities:
        """``server: vllm``/``sglang``/``auto`` add exact ``logprobs`` (no batch API there)."""
        if spec.options.get("server") in EXACT_SERVERS:
            return Capabilities(
                logprobs=True, top_logprobs=20, sampling=True, text_generation=True,
                answer_rules=("answer_start",),
            )
        return self.capabilities

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        from valuesim_openai.provider import OpenAIProvider

        return OpenAIProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(OpenAIFactory())

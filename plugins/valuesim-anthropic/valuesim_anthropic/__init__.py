"""valuesim provider plugin: Anthropic's Messages API.

The Messages API has no log-probabilities, so answers are estimated by sampling or
by a verbalized distribution. The ``anthropic`` SDK is imported when a provider is
created, not when providers are listed.
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

__all__ = ["AnthropicFactory", "register_providers"]


class AnthropicFactory:
    name = "anthropic"
    package = "valuesim-anthropic"
    capabilities = Capabilities(sampling=True, text_generation=True, batch_api=True)

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        from valuesim_anthropic.provider import AnthropicProvider

        return AnthropicProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(AnthropicFactory())

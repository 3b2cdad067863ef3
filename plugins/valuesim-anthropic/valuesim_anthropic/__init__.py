"""valuesim provider plugin: Anthropic's Messages API.

The Messages API has no log-probabilities, so answers are estimated by sampling or
by a verbalized distribution. Listing providers imports only this module (and
``valuesim``); the ``anthropic`` SDK is imported when a provider is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim import hookimpl
from valuesim_anthropic.options import CAPABILITIES, AnthropicOptions

if TYPE_CHECKING:
    from valuesim import ModelSpec, Provider, ProviderFactory

__all__ = ["AnthropicFactory", "AnthropicOptions", "register_providers"]

class AnthropicFactory:
    name = "anthropic"
    package = "valuesim-anthropic"
    options = AnthropicOptions
    capabilities = CAPABILITIES

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Provider:
        from valuesim_anthropic.provider import AnthropicProvider

        return AnthropicProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(AnthropicFactory())

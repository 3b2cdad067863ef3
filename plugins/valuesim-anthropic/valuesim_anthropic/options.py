"""The anthropic plugin's options and constants, in a module of their own: the package
(listing providers) and its provider module both import them, and neither imports
the other at import time, so there is no import circle."""

from __future__ import annotations

from valuesim import BatchOptions, Capabilities

CAPABILITIES = Capabilities(sampling=True, text_generation=True, batch_api=True)


class AnthropicOptions(BatchOptions):
    """``models.<name>.options`` for Anthropic."""

    max_tokens: int | None = None  # per scoring reply (8 sampling, 300 verbalized)
    omit_temperature: bool = False  # never send temperature (models that reject it)
    prompt_caching: bool = True  # cache_control on the system (persona) block

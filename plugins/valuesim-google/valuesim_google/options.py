"""The google plugin's options and constants, in a module of their own: the package
(listing providers) and its provider module both import them, and neither imports
the other at import time, so there is no import circle."""

from __future__ import annotations

from valuesim import ProviderOptions


class GoogleOptions(ProviderOptions):
    """``models.<name>.options`` for Google."""

    logprobs: bool = True  # false: a model without log-probabilities (estimator set explicitly)
    max_top_logprobs: int | None = None  # the model's cap on k (at most 20)
    max_tokens: int | None = None  # per scoring reply (2 top-k, 8 sampling, 300 verbalized)
    thinking_budget: int | None = None  # 0 turns thinking off so the first token is the answer

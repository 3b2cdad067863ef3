"""The openai plugin's options and constants, in a module of their own: the package
(listing providers) and its provider module both import them, and neither imports
the other at import time, so there is no import circle."""

from __future__ import annotations

from typing import Literal

from valuesim import BatchOptions


class OpenAIOptions(BatchOptions):
    """``models.<name>.options`` for OpenAI; unset ones take per-model defaults."""

    logprobs: bool | None = None  # force the log-probability capability on/off
    max_top_logprobs: int | None = None  # the model's cap on k (at most 20)
    max_tokens: int | None = None  # per scoring reply (2 top-k, 8 sampling, 300 verbalized)
    max_tokens_param: str | None = None  # "max_tokens" or "max_completion_tokens"
    omit_temperature: bool | None = None  # never send temperature
    seed: int | None = None
    # Exact prefix scoring on a vLLM or SGLang server (README, "Server mode"): the
    # first token's top-k, plus one request per answer that prefixes a longer one
    # ("1" of "10") continuing the assistant turn with it. Changes answers: in the key.
    server: Literal["openai", "vllm", "sglang", "auto"] | None = None
    # When the server ignores the continuation fields: use the top-k estimate instead
    # of stopping the run (the rows then record estimator top_logprobs).
    fallback_top_logprobs: bool = False
    # Server mode on vLLM reads the answers' tokens by id (``logprob_token_ids``), so no
    # answer is floored at any --max-logprobs. None: where the server honours it, else
    # the first token's top-k (said in one line); false: always the top-k; true: stop
    # the run (one line) where the server does not honour it.
    logprob_token_ids: bool | None = None

#: Server modes that score prefixes exactly (estimator ``logprobs``).
EXACT_SERVERS = ("vllm", "sglang", "auto")

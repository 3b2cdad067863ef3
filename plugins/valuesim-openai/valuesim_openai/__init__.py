"""valuesim provider plugin: OpenAI and OpenAI-compatible chat-completions servers.

Listing providers imports only this module (and ``valuesim``); the ``openai`` SDK is
imported when a provider is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from valuesim import BatchOptions, Capabilities, hookimpl

if TYPE_CHECKING:
    from valuesim import ModelSpec, Provider, ProviderFactory

__all__ = ["EXACT_SERVERS", "OpenAIFactory", "OpenAIOptions", "register_providers"]


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

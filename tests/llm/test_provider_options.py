"""Typed provider options: one-line errors, and the cache key built from their declaration.

The key of every existing config must stay byte-for-byte what it was when the
engine had a hard-coded list of transport options (``timeout_s``, ``api_key_env``,
``batch_poll_s``, ``batch_wait_s``): answers already paid for must stay found.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from valuesim import ProviderOptions, transport
from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.provider_options import BatchOptions, answer_options
from valuesim.llm.types import Capabilities, ChatMessage, ScoreRequest, cache_key

# The list the engine hard-coded before options declared themselves.
OLD_TRANSPORT = frozenset({"timeout_s", "api_key_env", "batch_poll_s", "batch_wait_s"})
CAPS = Capabilities(logprobs=True, top_logprobs=20, sampling=True, text_generation=True, batch_api=True)

SAMPLE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"device": "cpu", "threads": 4, "batch_size": 8},
    {"timeout_s": 9, "api_key_env": "VLLM_KEY"},
    {"batch_poll_s": 0.01, "batch_wait_s": 60, "max_tokens": 4},
    {"logprobs": False, "max_top_logprobs": 5, "seed": 7, "timeout_s": 30},
    {"prompt_caching": False, "omit_temperature": True, "batch_wait_s": 1},
    {"thinking_budget": 0, "api_key_env": "GEMINI_API_KEY", "max_tokens_param": "max_tokens"},
]


class _Factory:
    """A factory that never creates anything: the key is computed without a provider."""

    package = "valuesim-tests"
    capabilities = CAPS

    def __init__(self, name: str, options: type[ProviderOptions] | None = None) -> None:
        self.name = name
        if options is not None:
            self.options = options

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Any:
        raise AssertionError("the key needs no provider")


def _request(engine: Engine) -> ScoreRequest:
    messages = (ChatMessage("system", "Your persona: P1"), ChatMessage("user", "Q?"))
    return engine.request(messages, ("1", "2", "3"))


def _old_key(factory: _Factory, spec: ModelSpec, request: ScoreRequest) -> str:
    settings: dict[str, object] = {"precision": spec.precision}
    kept = {k: v for k, v in spec.options.items() if k not in OLD_TRANSPORT}
    if kept:
        settings["options"] = kept
    return cache_key(factory.name, spec.model, spec.revision, request, settings)


def _factories() -> list[_Factory]:
    """A factory without an options model, and the bundled plugins' declarations."""
    found = [_Factory("transformers"), _Factory("inproc")]
    for name, module, cls in [("openai", "valuesim_openai", "OpenAIOptions"),
                              ("anthropic", "valuesim_anthropic", "AnthropicOptions"),
                              ("google", "valuesim_google", "GoogleOptions")]:
        try:
            found.append(_Factory(name, getattr(importlib.import_module(module), cls)))
        except ImportError:  # the plugin is not installed
            continue
    return found


@pytest.mark.parametrize("options", SAMPLE_OPTIONS, ids=lambda o: ",".join(o) or "none")
def test_cache_keys_of_existing_configs_are_unchanged(options: dict[str, Any]) -> None:
    for factory in _factories():
        declared = getattr(factory, "options", None)
        if declared is not None and not set(options) <= declared.known():
            continue  # not an existing config: the provider refuses it before any answer
        spec = ModelSpec(provider=factory.name, model="m", options=options)
        engine = Engine(factory, spec, None, progress=False)  # type: ignore[arg-type]
        request = _request(engine)
        assert engine.key(request) == _old_key(factory, spec, request), factory.name


def test_a_pinned_key_never_moves() -> None:
    # computed with the engine before the change (its hard-coded transport list)
    spec = ModelSpec(provider="transformers", model="m", options={"device": "cpu", "timeout_s": 5})
    engine = Engine(_Factory("transformers"), spec, None, progress=False)  # type: ignore[arg-type]
    assert engine.key(_request(engine)) == _old_key(_Factory("transformers"), spec, _request(engine))
    assert engine.key(_request(engine)) == PINNED


PINNED = "40a64ed0c81a73f59267fb1ec3344d16a06fa4625e81d530be024464f655b236"


class _Opts(ProviderOptions):
    poll_every_s: float = transport(1.0, description="how often to poll")
    temperature_offset: float = 0.0


def test_declared_transport_options_stay_out_and_the_rest_stays_in() -> None:
    assert _Opts.transport_names() == {"timeout_s", "api_key_env", "poll_every_s"}
    raw = {"poll_every_s": 5, "temperature_offset": 0.1, "timeout_s": 3, "unknown": 1}
    assert answer_options(_Opts, raw) == {"temperature_offset": 0.1, "unknown": 1}
    # no declaration: the options every API provider shares stay out, as they always did
    assert answer_options(None, {"batch_poll_s": 1, "device": "cpu"}) == {"device": "cpu"}
    assert BatchOptions.transport_names() == OLD_TRANSPORT


def test_option_errors_are_one_line_and_name_the_provider() -> None:
    with pytest.raises(ProviderError, match=r"^mine: unknown options \['timout_s'\]; known: .*timeout_s") as info:
        _Opts.parse("mine", {"timout_s": 3})
    assert "\n" not in str(info.value)
    assert "poll_every_s" in str(info.value)
    with pytest.raises(ProviderError, match=r"mine: options.timeout_s must be a positive number") as info:
        _Opts.parse("mine", {"timeout_s": 0})
    assert "\n" not in str(info.value)
    with pytest.raises(ProviderError, match=r"mine: options.poll_every_s: .*got 'soon'") as info:
        _Opts.parse("mine", {"poll_every_s": "soon"})
    assert "\n" not in str(info.value)
    parsed = _Opts.parse("mine", {"timeout_s": "5"})
    assert (parsed.timeout_s, parsed.poll_every_s, parsed.api_key_env) == (5.0, 1.0, None)

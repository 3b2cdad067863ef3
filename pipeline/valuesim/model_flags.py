"""A model named on the command line: ``--model`` with ``--provider``, ``--base-url``,
``--estimator``, ``--answer-rule`` and ``--option KEY=VALUE`` (``ask``, ``plan``,
``score``), so that any model can be asked without editing params.yaml.

Without ``--provider``, ``--model`` names an entry of the params' ``models`` section
and the other flags override its settings. With ``--provider``, ``--model`` is the
provider's own model name (``gpt-4o-mini``, ``Qwen/Qwen3-8B``) and the flags are the
whole definition, as a params entry ``{provider: ..., model: ..., base_url: ...}``
would be; the model then goes into the params in memory under that name
(:func:`with_model`), so everything downstream (the engine, the response cache, the
plan and ``simulate.max_cost_usd``: a remote model without a price is refused under a
ceiling) treats it exactly as a params model. Keys come from the environment only
(docs/api-providers.md, "API keys and server URLs"): the provider decides which host
gets which key and refuses plain http off loopback; a URL that carries a secret itself
is refused here, before anything is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from valuesim.errors import ConfigError

if TYPE_CHECKING:
    from valuesim.config import ModelSpec, Params


@dataclass(frozen=True)
class ModelFlags:
    """The command line's model settings; None (or no options): not given."""

    provider: str | None = None
    base_url: str | None = None
    estimator: str | None = None
    answer_rule: str | None = None
    options: tuple[str, ...] = ()  # KEY=VALUE, as given

    def given(self) -> bool:
        return any(v is not None for v in (self.provider, self.base_url, self.estimator,
                                           self.answer_rule)) or bool(self.options)


def parse_options(given: Sequence[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a model's ``options`` mapping; each value is read
    as a YAML scalar (``server=vllm``, ``max_tokens=8``, ``logprobs=true``)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in given:
        key, eq, raw = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--option {pair!r}: write KEY=VALUE, e.g. --option api_key_env=VLLM_KEY")
        if key in out:
            raise ConfigError(f"--option {key} is given twice; give each option once")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw  # not YAML: the plain text
    return out


def _check_url(url: str) -> None:
    """One line for a base_url that cannot be used; a secret in it is refused: it would
    sit in the shell's history and the process list (keys come from the environment)."""
    from valuesim.urls import base_url_problem, redact_url, url_credential

    secret = url_credential(url)
    if secret:
        raise ConfigError(
            f"--base-url {redact_url(url)!r} carries {secret}, which would be kept in your shell "
            "history and shown in the process list; put the key in an environment variable and "
            "name it with --option api_key_env=VARIABLE"
        )
    problem = base_url_problem(url)
    if problem:
        raise ConfigError(f"--base-url: {problem}")


def how_to_add(model: str, params_file: str, known: Sequence[str]) -> str:
    """The one-line error of an unknown ``--model``: the two ways to name a model."""
    listed = ", ".join(sorted(known)) or "none"
    return (
        f"model {model!r} is not an entry of the models section of {params_file} ({listed}); "
        f"add one there, e.g. `{model}: {{provider: openai, model: {model}, "
        "base_url: \"http://127.0.0.1:8000/v1\"}`, or name its provider on the command line: "
        f"--provider openai --model {model} [--base-url URL] (see `valuesim providers`)"
    )


def resolve_model(
    params: Params, model: str, flags: ModelFlags, *, params_file: str = "params.yaml"
) -> ModelSpec | None:
    """The model the flags describe, or None when ``model`` is a params entry used as it
    is. Raises a one-line :class:`ConfigError` for an unknown name without ``--provider``
    and for settings a model cannot have."""
    from valuesim.config import ESTIMATORS, ModelSpec
    from valuesim.llm.types import ANSWER_RULES

    if flags.estimator is not None and flags.estimator not in ESTIMATORS:
        raise ConfigError(
            f"unknown estimator {flags.estimator!r}; choose one of: {', '.join(ESTIMATORS)}"
        )
    if flags.answer_rule is not None and flags.answer_rule not in ANSWER_RULES:
        raise ConfigError(
            f"unknown answer rule {flags.answer_rule!r}; choose one of: {', '.join(ANSWER_RULES)}"
        )
    if flags.base_url is not None:
        _check_url(flags.base_url)
    options = parse_options(flags.options)
    if flags.provider is None:
        if model not in params.models:
            raise ConfigError(how_to_add(model, params_file, list(params.models)))
        if not flags.given():
            return None
        base = params.models[model].model_dump()
        base["options"] = {**base["options"], **options}
    else:
        from valuesim.plugins import get_provider_factory

        get_provider_factory(flags.provider)  # an unknown one: one line listing the installed
        entry = params.models.get(model)
        if entry is not None and (entry.provider, entry.model) != (flags.provider, model):
            # the run is named `model` (labels, the study's fitted temperatures and intervals):
            # it must not borrow those of the params entry of that name, another model
            raise ConfigError(
                f"--model {model} names the models entry of {params_file} for "
                f"{entry.provider}/{entry.model}; drop --provider to ask that entry, or give "
                f"{flags.provider}'s own model name"
            )
        base = {"provider": flags.provider, "model": model, "options": options}
        if entry is not None:  # the same model: its entry's settings, then the flags
            base = {**entry.model_dump(), "options": {**entry.options, **options}}
    overrides = {"base_url": flags.base_url, "estimator": flags.estimator,
                 "answer_rule": flags.answer_rule}
    try:
        return ModelSpec.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        raise ConfigError(f"invalid model settings: {str(exc).splitlines()[-1].strip()}") from exc


def with_model(params: Params, model: str, spec: ModelSpec | None) -> Params:
    """``params`` with ``spec`` as its ``models`` entry ``model`` (in memory only; the
    params file is not touched); ``spec`` None: ``params`` unchanged."""
    if spec is None:
        return params
    return params.model_copy(update={"models": {**params.models, model: spec}})

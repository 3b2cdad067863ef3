"""Typed provider options (``models.<name>.options``) that say which of them change answers.

A provider declares its options as a :class:`ProviderOptions` subclass. Every field
changes answers unless it is declared with :func:`transport` (timeouts, polling,
where the key is read from): the engine keeps transport options out of the response
cache key, so a new plugin's polling interval never invalidates answers already paid
for, and an option nobody classified stays in the key (the safe side).

The cache key is built from the *raw* mapping in the config (:func:`answer_options`),
not from the parsed model, so defaults a provider fills in never change existing keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from valuesim.errors import ProviderError
from valuesim.llm.api_support import DEFAULT_TIMEOUT_S

# json_schema_extra key of a field's declaration
CHANGES_ANSWERS = "changes_answers"


def transport(default: Any = None, *, description: str = "") -> Any:
    """A field that only changes how requests are sent, never an answer (out of the cache key)."""
    return Field(default, description=description, json_schema_extra={CHANGES_ANSWERS: False})


class ProviderOptions(BaseModel):
    """Base of a provider's options: unknown names are refused, values are frozen.

    Subclass it with the provider's own fields; a plain field changes answers, a
    :func:`transport` field does not.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = transport(
        DEFAULT_TIMEOUT_S, description="per-request timeout in seconds; the engine retries a timeout"
    )
    api_key_env: str | None = transport(
        None, description="environment variable holding the key for a server other than the vendor's"
    )

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _positive_timeout(cls, value: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = -1.0
        if seconds <= 0:
            raise ValueError(f"options.timeout_s must be a positive number of seconds, got {value!r}")
        return seconds

    @classmethod
    def parse(cls, provider: str, raw: Mapping[str, Any]) -> ProviderOptions:
        """``raw`` (a spec's options) validated; a one-line ProviderError naming what is wrong."""
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            raise ProviderError(_one_line(cls, provider, exc)) from None

    @classmethod
    def known(cls) -> frozenset[str]:
        return frozenset(cls.model_fields)

    @classmethod
    def transport_names(cls) -> frozenset[str]:
        """The fields declared with :func:`transport`."""
        return frozenset(
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.json_schema_extra, dict)
            and field.json_schema_extra.get(CHANGES_ANSWERS) is False
        )


class BatchOptions(ProviderOptions):
    """Options of a provider with a batch API (see :mod:`valuesim.llm.batch_runner`)."""

    batch_poll_s: float = transport(30.0, description="seconds between polls of a pending batch")
    batch_wait_s: float = transport(
        24 * 3600.0, description="how long one run waits for a batch before giving up (resumable)"
    )


#: How the engine keys a factory that declares no options model: the transport
#: options every API provider shares (timeouts, key variable, batch polling) stay
#: out of the key, everything else is in, as it always was.
DEFAULT_OPTIONS: type[ProviderOptions] = BatchOptions


def answer_options(
    options: type[ProviderOptions] | None, raw: Mapping[str, Any]
) -> dict[str, Any]:
    """The part of ``raw`` that can change an answer: all but the declared transport options.

    Unknown names stay in (they cannot be classified, and the provider refuses them
    anyway). ``options`` None: the factory declares none, see :data:`DEFAULT_OPTIONS`.
    """
    leave_out = (options or DEFAULT_OPTIONS).transport_names()
    return {k: v for k, v in raw.items() if k not in leave_out}


def _one_line(cls: type[ProviderOptions], provider: str, exc: ValidationError) -> str:
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"{provider}: unknown options {unknown}; known: {', '.join(sorted(cls.known()))}"
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if message.startswith("options."):  # the validator already names the option
        return f"{provider}: {message}"
    return f"{provider}: options.{where}: {message}, got {first.get('input')!r}"


__all__ = [
    "DEFAULT_OPTIONS",
    "BatchOptions",
    "ProviderOptions",
    "answer_options",
    "transport",
]

"""Base class of providers that call a vendor's HTTP API (the three bundled plugins).

:class:`APIProvider` owns what every API provider does the same way: the spec,
typed options (:mod:`valuesim.llm.provider_options`), the key (read from the
declared environment variables when the provider is created, so a missing key fails
before any request, and redacted from every message), the timeout, the estimator
check, error translation around each SDK call, the verbalized instruction, and the
retry-safe per-request / per-draw loop. A subclass supplies the vendor's wire
format only: its client, one request body, sending it, and turning replies into a
distribution. Patterned on inspect_ai's ``ModelAPI`` and simonw/llm's ``KeyModel``.

How a score runs: ``score`` -> (batch runner, or) ``score_one`` per request ->
``draws`` replies, each ``send(request_body(request))`` -> ``distribution``. Finished
requests and draws are remembered (:class:`RetryMemo`) until their chunk succeeds,
so an engine retry of a chunk pays only for what failed. Each finished request is
also handed to the engine's :class:`AnswerSink` the moment it arrives, so the
engine commits it then (not when the whole chunk is done): an interrupt or a
failure later in the chunk cannot throw away an answer already paid for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from valuesim.errors import ProviderError
from valuesim.llm import answer_estimates as est
from valuesim.llm import interrupt
from valuesim.llm.api_support import Endpoint, RetryMemo, raise_sdk_error, resolve_endpoint
from valuesim.llm.provider_options import ProviderOptions
from valuesim.llm.types import AnswerDistribution, Capabilities, Estimator, ScoreRequest

if TYPE_CHECKING:
    from valuesim.config import ModelSpec
    from valuesim.llm.batch_runner import BatchRunner

API_ESTIMATORS: tuple[Estimator, ...] = ("top_logprobs", "sampling", "verbalized")


class AnswerSink(Protocol):
    """Where a provider reports each answer as it arrives (the engine sets one)."""

    def arrived(self, request: ScoreRequest, answer: AnswerDistribution) -> None:
        """Commit one paid answer now."""

    def stopping(self) -> bool:
        """True once the run is being stopped: send no further request."""


class APIProvider:
    """One model behind a vendor API. Subclasses set the class attributes and the wire format."""

    #: provider name, as registered (also the prefix of every error message)
    name: ClassVar[str]
    #: the vendor's own URL; its key variables are sent to this host only
    default_url: ClassVar[str]
    #: where the vendor's key is read from, first non-blank wins
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    #: the options this provider accepts; see :func:`valuesim.llm.provider_options.transport`
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions
    #: what the API offers at all; override :meth:`model_capabilities` for per-model flags
    capabilities: Capabilities = Capabilities(sampling=True, text_generation=True)
    #: estimators the API can give, most exact first (the default is the first usable one)
    estimators: ClassVar[tuple[Estimator, ...]] = API_ESTIMATORS
    #: why an estimator is refused, by estimator ("top_logprobs": the model gives none);
    #: ``{model}`` and ``{estimator}`` are filled in
    refusals: ClassVar[Mapping[str, str]] = {}
    #: True when one request returns all sampled replies (``n``); else one request per draw
    samples_in_one_request: ClassVar[bool] = False
    #: module of a Stainless-generated SDK whose errors :meth:`translate_error` maps
    sdk_module: ClassVar[str | None] = None
    #: the :class:`BatchRunner` used when the spec sets ``batch_api``
    batch_runner: ClassVar[type[BatchRunner] | None] = None
    #: set by the engine: told of each answer as it arrives (None: nobody listens)
    answer_sink: AnswerSink | None = None

    def __init__(self, spec: ModelSpec, *, state_dir: Path) -> None:
        self.spec = spec
        self.model = spec.model
        self.revision = spec.revision
        self.state_dir = state_dir
        self.options: Any = self.options_model.parse(self.name, spec.options)
        self.capabilities = self.model_capabilities()
        self.estimator: Estimator = spec.estimator or self.default_estimator()
        self.check_estimator(self.estimator)
        self.endpoint: Endpoint = resolve_endpoint(
            self.name, base_url=spec.base_url, default_url=self.default_url,
            env_vars=self.key_env_vars, api_key_env=self.options.api_key_env,
        )
        self.timeout_s: float = self.options.timeout_s
        self._requests = RetryMemo()
        self._draws = RetryMemo()
        self.client = self.make_client()

    # ----- what a subclass supplies -------------------------------------------------------

    def make_client(self) -> Any:
        """The SDK client (import the SDK here): ``self.endpoint``'s URL and
        ``sdk_key``, ``self.timeout_s``, the SDK's own retries off (the engine retries),
        and ``self.endpoint.mounts`` on its httpx client, so a loopback URL (where a key
        may go over plain http) is never reached through an HTTP_PROXY."""
        raise NotImplementedError

    def request_body(self, request: ScoreRequest) -> Any:
        """What one draw sends (also a batch entry's body)."""
        raise NotImplementedError

    def send(self, body: Any) -> Any:
        """One ordinary request for ``body`` (through :meth:`call`); its reply."""
        raise NotImplementedError

    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution:
        """One distribution from the draws' replies; ProviderError (one line) if malformed."""
        raise NotImplementedError

    # ----- overridable defaults ----------------------------------------------------------

    def model_capabilities(self) -> Capabilities:
        """This model's flags (the class's ``capabilities`` unless overridden)."""
        return type(self).capabilities

    def default_estimator(self) -> Estimator:
        """The first of ``estimators`` this model can give."""
        for estimator in self.estimators:
            if self._usable(estimator):
                return estimator
        return self.estimators[0]

    def check_estimator(self, estimator: str) -> None:
        """ProviderError (before any request) when this model cannot give ``estimator``."""
        if not self._usable(estimator):
            why = self.refusals.get(estimator) or (
                f"estimator {estimator!r} is not offered; set estimator to one of: "
                f"{', '.join(self.estimators)}"
            )
            raise ProviderError(f"{self.name}: {why.format(model=self.model, estimator=estimator)}")

    def translate_error(self, exc: Exception) -> None:
        """Raise the engine's error for ``exc`` (TransientProviderError when worth
        retrying, else a one-line ProviderError, keys redacted); return to let it pass.

        The default maps a Stainless SDK's errors (``sdk_module``)."""
        if self.sdk_module:
            sdk = importlib.import_module(self.sdk_module)
            raise_sdk_error(
                sdk, exc, provider=self.name, where=self.where, key=self.endpoint.key,
                timeout=self.timeout_s,
            )

    # ----- shared machinery --------------------------------------------------------------

    @property
    def where(self) -> str:
        """The endpoint's URL as it may appear in messages (credentials redacted)."""
        return self.endpoint.where

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run one SDK call, translating its errors for the engine."""
        try:
            return fn()
        except Exception as exc:
            self.translate_error(exc)
            raise

    def estimator_for(self, request: ScoreRequest) -> Estimator:
        """The request's estimator (or the provider's), checked along with its answer rule."""
        estimator = request.decoding.estimator or self.estimator
        self.check_estimator(estimator)
        est.check_answer_rule(self.name, request, estimator)
        return estimator

    def draws(self, request: ScoreRequest) -> int:
        """Requests sent for one answer: one per sample, unless one request returns them all."""
        if self.samples_in_one_request or self.estimator_for(request) != "sampling":
            return 1
        return request.decoding.samples

    @staticmethod
    def verbalized_suffix(request: ScoreRequest, estimator: Estimator) -> str:
        """What the last user turn gets appended for the verbalized estimator ("" otherwise)."""
        if estimator != "verbalized":
            return ""
        return f"\n\n{est.verbalized_instruction(request.answers)}"

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        if self.spec.batch_api and self.batch_runner is not None:
            return self.batch_runner(self).score(requests)
        return self._requests.each(requests, self._score_reported)

    def _score_reported(self, request: ScoreRequest) -> AnswerDistribution:
        """:meth:`score_one`, reported to the sink at once; nothing new once it stops."""
        sink = self.answer_sink
        if sink is not None and sink.stopping():
            raise interrupt.Interrupted(signum=interrupt.received_signal())
        answer = self.score_one(request)
        if sink is not None:
            sink.arrived(request, answer)
        return answer

    def score_one(self, request: ScoreRequest) -> AnswerDistribution:
        """One answer by ordinary requests; finished draws are not sent again on a retry."""
        body = self.request_body(request)
        replies = self._draws.each(
            [(request, s) for s in range(self.draws(request))], lambda _draw: self.send(body)
        )
        return self.distribution(request, replies)

    def share_draws(self, other: APIProvider) -> None:
        """Remember finished draws in ``other``'s memo: the same model on another server
        (a fleet, :mod:`valuesim.llm.fleet`), so a request re-routed between them does
        not send again the draws that finished before its server failed."""
        self._draws = other._draws

    def _usable(self, estimator: str) -> bool:
        if estimator not in self.estimators:
            return False
        return estimator != "top_logprobs" or self.capabilities.top_logprobs > 0

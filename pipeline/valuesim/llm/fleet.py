"""A fleet: one model served by several servers (``base_url`` as a list).

The engine creates a :class:`FleetProvider` when a spec lists two or more URLs (see
:func:`create_provider`); it wraps one provider per server, each made by the
provider's own factory from a copy of the spec with that one URL, so keys, options,
error mapping and estimators are exactly the single-server ones.

Routing. Every persona's requests go to one server, so that server's prefix cache
(vLLM's automatic prefix caching, SGLang's radix cache) serves the persona's
system prompt for all its questions. Requests are keyed by the conversation's
leading system message (the persona), or by everything before the last turn when
there is none, and each key ranks the servers by rendezvous (highest-random-weight)
hashing: a key keeps its server when another server leaves, and only the keys of
a server that left move, each to its own next choice. :meth:`FleetProvider.assign`
spreads one run's keys with a load bound (Mirrokni, Thorup and Zadimoghaddam,
"Consistent hashing with bounded loads", 2018): a key takes its first choice
unless that server already holds ``1 + LOAD_SLACK`` times its fair share of the
run's requests, so no server gets the tail of the run alone.

Concurrency. Each server has ``spec.concurrency`` slots (a semaphore per server):
at most that many requests are in flight to one server, whatever the rest of the
fleet does; the engine keeps ``concurrency x servers`` chunks in flight
(:attr:`FleetProvider.max_in_flight`), alternating between the servers' chunks.

Failures. A server whose request fails with a transient error (cannot connect,
timeout, 429, 5xx) is taken out of rotation for the provider's lifetime and the
request goes at once to the key's next live server. The last live server is never
taken out: its failures go to the engine, which backs off and retries as it does
with one server, and gives up with a one-line error naming the servers that left.
Answers that finished are kept until their chunk succeeds (:class:`RetryMemo`), and
draws of multi-draw requests are shared between the servers' providers, so a
re-routed chunk sends only what had not finished: nothing is paid twice. A
permanent error (a 4xx, a malformed reply) stops the run as with one server: it is
about the request or the configuration, which every server would reject alike.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim.contracts import Provider, ProviderFactory, TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.api_provider import APIProvider
from valuesim.llm.api_support import RetryMemo, redact_url
from valuesim.llm.types import AnswerDistribution, ChatMessage, ScoreRequest

if TYPE_CHECKING:
    from valuesim.config import ModelSpec

#: How far above its fair share of a run's requests a server may be filled before a
#: key goes to its next choice: a little slack keeps more keys on their first choice
#: (stable across resumed runs) at the cost of at most this much of the throughput.
LOAD_SLACK = 0.03


def create_provider(
    factory: ProviderFactory,
    spec: ModelSpec,
    *,
    state_dir: Path,
    log: Callable[[str], None] | None = None,
) -> Provider:
    """The provider for ``spec``: a :class:`FleetProvider` when it lists 2+ servers.

    Before returning a fleet, each server that can list its models (an optional
    ``server_models()`` on the provider) is asked, and a server that does not serve
    ``spec.model`` is a one-line ProviderError: no scoring request is sent first.
    """
    urls = spec.base_url
    if not isinstance(urls, list):
        return factory.create(spec, state_dir=state_dir)
    if len(urls) == 1:
        return factory.create(spec.model_copy(update={"base_url": urls[0]}), state_dir=state_dir)
    providers = [
        factory.create(spec.model_copy(update={"base_url": url}), state_dir=state_dir) for url in urls
    ]
    fleet = FleetProvider(providers, urls, concurrency=spec.concurrency, log=log)
    fleet.check_models()
    return fleet


def affinity_key(request: ScoreRequest) -> bytes:
    """What decides a request's server: the persona (leading system message), else
    the conversation before its last turn, else the whole request."""
    msgs: Sequence[ChatMessage] = request.messages
    head = [m for m in msgs[:1] if m.role == "system"] or list(msgs[:-1]) or list(msgs)
    return "\x1e".join(f"{m.role}\x1f{m.content}" for m in head).encode()


def _weight(server: str, key: bytes) -> int:
    # A stable hash (not Python's salted hash()): the same key picks the same server
    # in every process and run.
    return int.from_bytes(hashlib.blake2b(server.encode() + b"\x00" + key, digest_size=8).digest(), "big")


@dataclass
class ServerStats:
    """What one server answered (``requests``: answers it returned, once each)."""

    url: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    failures: int = 0
    out: str = ""  # why it was taken out of rotation ("" while it is in)

    def since(self, before: ServerStats) -> ServerStats:
        return replace(
            self,
            requests=self.requests - before.requests,
            prompt_tokens=self.prompt_tokens - before.prompt_tokens,
            completion_tokens=self.completion_tokens - before.completion_tokens,
            cached_tokens=self.cached_tokens - before.cached_tokens,
            failures=self.failures - before.failures,
        )

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "url"}


class FleetProvider:
    """Several servers of one model behind the single-provider interface."""

    local = False

    def __init__(
        self,
        providers: Sequence[Provider],
        urls: Sequence[str],
        *,
        concurrency: int,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if len(providers) != len(urls) or len(providers) < 2:
            raise ValueError("a fleet needs one provider per URL, and at least two")
        first = providers[0]
        self.name: str = first.name
        self.model: str = first.model
        self.revision: str | None = first.revision
        self.capabilities = first.capabilities
        self.providers = list(providers)
        self.urls = [redact_url(u) for u in urls]  # shown and hashed: never a credential
        self.concurrency = concurrency
        self._slots = [threading.BoundedSemaphore(concurrency) for _ in providers]
        self._live = [True] * len(providers)
        self._route: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._memo = RetryMemo()
        self._stats = [ServerStats(u) for u in self.urls]
        self._log = log or (lambda _msg: None)
        for p in self.providers[1:]:
            if isinstance(p, APIProvider) and isinstance(first, APIProvider):
                p.share_draws(first)

    # -- before any request ------------------------------------------------------

    def check_models(self) -> None:
        """ProviderError (one line) when a server does not serve this model."""
        for url, p in zip(self.urls, self.providers, strict=True):
            listing = getattr(p, "server_models", None)
            if not callable(listing):
                continue
            try:
                served = [str(m) for m in listing()]
            except (ProviderError, TransientProviderError) as exc:
                raise ProviderError(
                    f"{self.name}: cannot list the models of fleet server {url} ({exc}); "
                    "start it or remove it from base_url"
                ) from None
            if self.model not in served:
                shown = ", ".join(served[:5]) + (", ..." if len(served) > 5 else "") or "none"
                raise ProviderError(
                    f"{self.name}: fleet server {url} does not serve model {self.model!r} "
                    f"(it serves: {shown}); every server in base_url must serve the same model"
                )

    # -- routing -----------------------------------------------------------------

    @property
    def servers(self) -> int:
        return len(self.providers)

    @property
    def max_in_flight(self) -> int:
        """Chunks the engine keeps in flight: ``concurrency`` per live server."""
        with self._lock:
            return self.concurrency * max(1, sum(self._live))

    def _ranked(self, key: bytes) -> list[int]:
        """Live servers, the key's first choice first (rendezvous hashing)."""
        order = sorted(range(len(self.urls)), key=lambda i: _weight(self.urls[i], key), reverse=True)
        return [i for i in order if self._live[i]]

    def assign(self, requests: Sequence[ScoreRequest]) -> list[int]:
        """The server of each request, every key on one server, loads within the bound."""
        keys = [affinity_key(r) for r in requests]
        sizes = Counter(keys)
        with self._lock:
            live = [i for i, up in enumerate(self._live) if up]
            cap = math.ceil(len(keys) / len(live) * (1 + LOAD_SLACK))
            load = dict.fromkeys(live, 0)
            for key, size in sizes.items():  # first-appearance order: deterministic
                order = self._ranked(key)
                server = next((i for i in order if load[i] + size <= cap), None)
                if server is None:  # a key larger than the slack: the least loaded server
                    server = min(order, key=lambda i: load[i])
                load[server] += size
                self._route[key] = server
        return [self._route[k] for k in keys]

    def _server_for(self, key: bytes) -> int:
        with self._lock:
            server = self._route.get(key)
            if server is None or not self._live[server]:
                server = self._ranked(key)[0]
                self._route[key] = server
            return server

    # -- scoring -----------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        # Finished answers are kept until the whole chunk succeeds: an engine retry
        # (the last server's transient failure) re-sends only the rest.
        return self._memo.each(requests, self._score_one)

    def _score_one(self, request: ScoreRequest) -> AnswerDistribution:
        key = affinity_key(request)
        while True:
            server = self._server_for(key)
            try:
                with self._slots[server]:
                    results = self.providers[server].score([request])
            except TransientProviderError as exc:
                if not self._take_out(server, exc):
                    raise self._last_server_error(server, exc) from exc
                continue
            if len(results) != 1:
                raise ProviderError(
                    f"{self.name}: {self.urls[server]} returned {len(results)} results for 1 request"
                )
            dist = results[0]
            with self._lock:
                s = self._stats[server]
                s.requests += 1
                s.prompt_tokens += dist.usage.prompt_tokens
                s.completion_tokens += dist.usage.completion_tokens
                s.cached_tokens += dist.usage.cached_tokens
            return dist

    def _take_out(self, server: int, exc: TransientProviderError) -> bool:
        """Take ``server`` out of rotation; False when it is the last one live."""
        with self._lock:
            self._stats[server].failures += 1
            if not self._live[server]:
                return True  # another request already took it out
            if sum(self._live) == 1:
                return False
            self._live[server] = False
            self._stats[server].out = " ".join(str(exc).split())[:200]
            left = sum(self._live)
        self._log(
            f"{self.name}: fleet server {self.urls[server]} taken out of rotation ({exc}); "
            f"its requests go to the other {left} server{'s' if left > 1 else ''}"
        )
        return True

    def _last_server_error(self, server: int, exc: TransientProviderError) -> TransientProviderError:
        with self._lock:
            gone = [u for u, up in zip(self.urls, self._live, strict=True) if not up]
        if not gone:
            return exc
        return TransientProviderError(
            f"{exc}; the other fleet servers are out of rotation ({', '.join(gone)}): "
            "restart them or fix base_url, then rerun to resume",
            retry_after=exc.retry_after,
        )

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        """Free text from the first live server (descriptor generation), with failover."""
        while True:
            with self._lock:
                server = next(i for i, up in enumerate(self._live) if up)
            gen = getattr(self.providers[server], "generate", None)
            if not callable(gen):
                raise ProviderError(f"provider {self.name!r} cannot generate text")
            try:
                with self._slots[server]:
                    return str(gen(messages, max_tokens=max_tokens))
            except TransientProviderError as exc:
                if not self._take_out(server, exc):
                    raise self._last_server_error(server, exc) from exc

    # -- reporting ---------------------------------------------------------------

    def server_stats(self) -> list[ServerStats]:
        """A snapshot of every server's totals over this provider's lifetime."""
        with self._lock:
            return [replace(s) for s in self._stats]


def stats_since(before: Sequence[ServerStats], after: Sequence[ServerStats]) -> dict[str, dict[str, object]]:
    """Per-server figures of one run (``after`` minus ``before``), by server URL."""
    return {a.url: a.since(b).to_json() for b, a in zip(before, after, strict=True)}

"""Run score requests through a provider: cache, resume, chunks, threads, retries.

The engine is the user-facing wrapper around a provider (which implements one
method, ``score``). A run looks every request up in the persistent response cache,
sends only the misses, in chunks of ``simulate.batch_size``, with up to
``spec.concurrency`` chunks in flight (per server, for a fleet of servers:
:mod:`valuesim.llm.fleet`), and stores each answer in the cache the moment it
arrives (an API provider reports each request of a chunk as it finishes, through
:class:`~valuesim.llm.api_provider.AnswerSink`; the local model each forward batch's
answers; other providers each chunk), moving the progress bar, or the log's progress line, as it does
(:mod:`valuesim.llm.progress`). A run
killed at any point therefore loses at most the calls in flight and never pays for
a finished one twice. Before sending, a run claims its prompts in the cache
(:meth:`ResponseCache.claim`): that checks the cache can be written before anything
is paid, and a second run on the same cache waits for the first one's answers to
those prompts instead of paying for them again. Transient failures (429, 5xx, timeouts)
are retried with exponential backoff, honouring ``retry_after`` up to ``timeout_s``
(a wait over a few seconds is announced with one line); a permanent
failure stops the run after everything finished has been saved.

Interrupts (:mod:`valuesim.llm.interrupt`): every wait here (a call's watchdog, a
backoff sleep, the main loop) watches the cancel event, so Ctrl-C or SIGTERM stops
new calls at once, gives calls in flight ``grace_s`` to land (their answers are
paid for), abandons the rest, and raises :class:`RunInterrupted` saying what was
saved. What each run paid is journalled (:mod:`valuesim.llm.paid_journal`) until a
completed run's summary reports it, so a killed run's tokens and cost show up in
the next run's summary instead of nowhere.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from valuesim.contracts import Provider, ProviderFactory, TransientProviderError
from valuesim.errors import DataError, ProviderError
from valuesim.llm import interrupt
from valuesim.llm.api_support import ANNOUNCE_WAIT_S
from valuesim.llm.cache import ResponseCache, resolve_cache_dir
from valuesim.llm.interrupt import Interrupted, RunInterrupted
from valuesim.llm.paid_journal import JOURNAL_DIR, Paid, RunJournal
from valuesim.llm.progress import Progress, log_interval
from valuesim.llm.provider_options import answer_options
from valuesim.llm.types import (
    ANSWER_RULES,
    STATED,
    AnswerDistribution,
    AnswerRule,
    Capabilities,
    ChatMessage,
    Decoding,
    Estimator,
    ScoreRequest,
    Usage,
    cache_key,
)

if TYPE_CHECKING:
    from valuesim.config import ModelSpec, Params, PriceEntry

FLAG_NO_COVERAGE = "coverage 0: no probability on any admissible answer"
_MAX_BACKOFF_S = 60.0
# How often waits look at the cancel event: the bound on reacting to Ctrl-C.
_POLL_S = 0.1
# How often a run waiting for another run's answers looks at the cache.
_AWAIT_OTHERS_S = 0.5
# After Ctrl-C, how long calls in flight may still land: they are paid for either way.
GRACE_S = 2.0


def best_estimator(caps: Capabilities) -> Estimator | None:
    """The most exact estimator a provider offers."""
    if caps.logprobs:
        return "logprobs"
    if caps.top_logprobs > 0:
        return "top_logprobs"
    if caps.sampling:
        return "sampling"
    if caps.text_generation:
        return "verbalized"
    return None


def _offers(caps: Capabilities) -> list[str]:
    return [
        e
        for e, ok in (
            ("logprobs", caps.logprobs),
            ("top_logprobs", caps.top_logprobs > 0),
            ("sampling", caps.sampling),
            ("verbalized", caps.text_generation),
        )
        if ok
    ]


def spec_capabilities(factory: ProviderFactory, spec: ModelSpec) -> Capabilities:
    """What ``factory`` offers for ``spec`` before its provider exists.

    A factory whose options unlock an estimator (the openai plugin's ``server: vllm``
    makes exact ``logprobs`` possible) has an optional ``capabilities_for(spec)``;
    otherwise its ``capabilities`` hold for every spec.
    """
    for_spec = getattr(factory, "capabilities_for", None)
    return for_spec(spec) if callable(for_spec) else factory.capabilities


def check_capabilities(provider: str, caps: Capabilities, spec: ModelSpec) -> Estimator:
    """The estimator this spec uses; ProviderError if the provider cannot deliver it."""
    est = spec.estimator or best_estimator(caps)
    where = f"{provider} model {spec.model!r}"
    if est is None:
        raise ProviderError(f"{where} offers no way to score answers; choose another provider")
    if est not in _offers(caps):
        raise ProviderError(
            f"{where} cannot give the {est!r} estimator; set estimator to one of: "
            f"{', '.join(_offers(caps)) or 'none'} in its models entry"
        )
    if spec.batch_api and not caps.batch_api:
        raise ProviderError(f"{where} has no batch API; set batch_api: false in its models entry")
    answer_rule_for(provider, caps, spec, est)
    return est


def answer_rule_for(
    provider: str, caps: Capabilities, spec: ModelSpec, estimator: Estimator
) -> AnswerRule | None:
    """What this spec's probabilities measure; ProviderError if the provider can't.

    The rule is a choice only for the log-probability estimators: a sampled reply
    counts when it starts with the answer (``answer_start``), and a verbalized
    distribution is whatever the model states, so neither takes a rule.
    """
    rule = spec.answer_rule
    where = f"{provider} model {spec.model!r}"
    if rule is not None and rule not in ANSWER_RULES:
        raise ProviderError(f"unknown answer_rule {rule!r}; choose one of: {', '.join(ANSWER_RULES)}")
    if estimator == "verbalized":
        if rule is not None:
            raise ProviderError(
                f"{where}: a verbalized distribution is stated by the model, so answer_rule "
                f"{rule!r} does not apply; remove answer_rule or use a log-probability estimator"
            )
        return None
    if estimator == "sampling":
        if rule not in (None, "answer_start"):
            raise ProviderError(
                f"{where}: sampled replies count when they start with the answer (answer_start); "
                f"answer_rule {rule!r} needs log-probabilities; remove answer_rule"
            )
        return None
    offered = caps.answer_rules or ("answer_start",)
    if rule is None:
        return offered[0]
    if rule not in offered:
        raise ProviderError(
            f"{where} cannot measure answer_rule {rule!r} with the {estimator} estimator; "
            f"set answer_rule to one of: {', '.join(offered)} in its models entry"
        )
    return rule


def decoding_for(spec: ModelSpec, estimator: Estimator, caps: Capabilities) -> Decoding:
    """Decoding settings for every request of this spec (they are part of the cache key).

    Settings that cannot affect the chosen estimator are left at their defaults so
    that changing them does not invalidate answers already paid for.
    """
    default = Decoding()
    return Decoding(
        estimator=estimator,
        answer_rule=answer_rule_for("", caps, spec, estimator),
        temperature=spec.temperature if estimator in ("sampling", "verbalized") else None,
        samples=spec.samples if estimator == "sampling" else 1,
        top_k=min(default.top_k, caps.top_logprobs) if estimator == "top_logprobs" else default.top_k,
    )


def plan_chunks(
    items: Sequence[tuple[str, ScoreRequest]], size: int
) -> list[list[tuple[str, ScoreRequest]]]:
    """Split requests into chunks of at most ``size``, cutting between shared prefixes.

    Requests whose messages differ only in the last one (all questions of one
    persona) are kept in one chunk where they fit, so a local provider can encode
    the persona prefix once per chunk.
    """
    groups: list[list[tuple[str, ScoreRequest]]] = []
    for item in items:
        prefix = item[1].messages[:-1]
        if groups and groups[-1][0][1].messages[:-1] == prefix:
            groups[-1].append(item)
        else:
            groups.append([item])
    chunks: list[list[tuple[str, ScoreRequest]]] = []
    current: list[tuple[str, ScoreRequest]] = []
    for group in groups:
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        while len(current) + len(group) > size:
            cut = size - len(current)
            chunks.append(current + group[:cut])
            current, group = [], group[cut:]
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


@dataclass
class RunSummary:
    """What one :meth:`Engine.run` did.

    Tokens and ``cost_usd`` count this run's calls plus, for an engine that carries
    them over, those of earlier runs that were interrupted or killed before any
    summary reported them (``earlier_*`` say how much of the total that is).
    """

    provider: str
    model: str
    requests: int = 0
    unique_requests: int = 0
    cache_hits: int = 0
    sent: int = 0  # requests answered by the provider in this run
    provider_calls: int = 0  # score() calls, retried attempts included
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    flagged: int = 0
    bad_cache_rows: int = 0  # cached answers that did not decode and were scored again
    earlier_runs: int = 0  # interrupted runs whose paid answers this summary reports
    earlier_answers: int = 0
    earlier_tokens: int = 0
    earlier_cost_usd: float = 0.0
    # A fleet (base_url as a list): per server URL, the answers it returned in this run
    # ("requests"), their tokens, its failed attempts, and why it left rotation ("out").
    servers: dict[str, dict[str, object]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def add_earlier(self, paid: Paid) -> None:
        """Report what interrupted runs paid for and never reported."""
        self.earlier_runs += paid.runs
        self.earlier_answers += paid.answers
        self.earlier_tokens += paid.prompt_tokens + paid.completion_tokens
        self.earlier_cost_usd += paid.cost_usd
        self.prompt_tokens += paid.prompt_tokens
        self.completion_tokens += paid.completion_tokens
        self.cached_tokens += paid.cached_tokens
        self.cost_usd += paid.cost_usd

    def line(self) -> str:
        earlier = ""
        if self.earlier_runs:
            runs = "an interrupted run" if self.earlier_runs == 1 else f"{self.earlier_runs} interrupted runs"
            earlier = (
                f" (incl. {self.earlier_answers} answers paid by {runs}: "
                f"{self.earlier_tokens} tokens, ${self.earlier_cost_usd:.4f})"
            )
        return (
            f"{self.provider}/{self.model}: {self.requests} requests, {self.cache_hits} cached, "
            f"{self.sent} sent in {self.provider_calls} calls ({self.retries} retries), "
            f"{self.prompt_tokens + self.completion_tokens} tokens, ${self.cost_usd:.4f}{earlier}, "
            f"{self.flagged} flagged, "
            + (f"{self.bad_cache_rows} unreadable cached answers re-scored, " if self.bad_cache_rows else "")
            + f"{self.wall_s:.1f}s"
            + self._servers_line()
        )

    def _servers_line(self) -> str:
        if not self.servers:
            return ""
        parts = []
        for url, s in self.servers.items():
            tokens = sum(v for k in ("prompt_tokens", "completion_tokens") if isinstance(v := s.get(k), int))
            out = f" (out: {s['out']})" if s.get("out") else ""
            parts.append(f"{url} {s.get('requests', 0)} req {tokens} tok{out}")
        return "; per server: " + ", ".join(parts)


def cost_of(usage: Usage, price: Mapping[str, float] | PriceEntry | None) -> float:
    """Cost in USD from a price table entry (USD per million tokens), else the provider's."""
    if price is not None and not isinstance(price, Mapping):
        price = price.rates()  # a typed simulate.prices entry
    if not price:
        return usage.cost_usd
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return (
        (usage.prompt_tokens - cached) * price.get("input", 0.0)
        + cached * price.get("cached_input", price.get("input", 0.0))
        + usage.completion_tokens * price.get("output", 0.0)
    ) / 1e6


def _answer_counts(keys: Sequence[str], requests: Sequence[ScoreRequest]) -> dict[str, int]:
    """How many probabilities each key's cached answer must hold."""
    return {k: len(r.answers) for k, r in zip(keys, requests, strict=True)}


def _checked(provider: str, request: ScoreRequest, dist: object) -> AnswerDistribution:
    """Reject malformed results (a provider bug or garbage from a server); flag coverage 0."""
    if not isinstance(dist, AnswerDistribution):
        raise ProviderError(f"provider {provider} returned {type(dist).__name__}, not an answer distribution")
    if len(dist.probs) != len(request.answers):
        raise ProviderError(
            f"provider {provider} returned {len(dist.probs)} probabilities "
            f"for {len(request.answers)} answers"
        )
    asked = request.decoding.answer_rule
    if asked is not None and dist.answer_rule != asked:
        raise ProviderError(
            f"provider {provider} measured answer_rule {dist.answer_rule!r} for a request that "
            f"asked for {asked!r}; the plugin does not implement that rule (see `valuesim providers`)"
        )
    if dist.flag:
        return dist
    total = math.fsum(dist.probs) if all(math.isfinite(p) for p in dist.probs) else math.nan
    if total == 0.0 or dist.coverage == 0.0:
        return replace(dist, flag=FLAG_NO_COVERAGE)
    if (
        not math.isfinite(total)
        or any(p < 0 for p in dist.probs)
        or abs(total - 1.0) > 1e-4
        or not (0.0 < dist.coverage <= 1.0 + 1e-6)
    ):
        raise ProviderError(
            f"provider {provider} returned an invalid distribution "
            f"(probabilities summing to {total:.6g}, coverage {dist.coverage!r})"
        )
    return dist


class Engine:
    """Score requests with one model through its provider, cached and resumable."""

    def __init__(
        self,
        provider: str | ProviderFactory,
        spec: ModelSpec,
        cache_dir: str | Path | None = None,
        *,
        batch_size: int = 16,
        max_retries: int = 4,
        timeout_s: float = 120.0,
        prices: Mapping[str, Mapping[str, float] | PriceEntry] | None = None,
        label: str | None = None,
        progress: bool | None = None,
        retry_flagged: bool = False,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] | None = None,
        log: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        grace_s: float = GRACE_S,
        carry_over: bool = False,
        progress_every_s: float | None = None,
    ) -> None:
        """``progress``: a bar in the terminal (default: when stderr is one); else a
        progress line every ``progress_every_s`` seconds (default: ``VALUESIM_PROGRESS_EVERY_S``
        or 30; :mod:`valuesim.llm.progress`). ``sleep``: replaces the backoff wait (tests);
        by default it is an interruptible wait. ``cancel``: the event that stops a run
        (default: the CLI's signal handler's, :data:`valuesim.llm.interrupt.CANCEL`). ``carry_over``: this
        engine's summaries report what interrupted runs paid (the pipeline's engines,
        whose summaries are printed; see :meth:`from_params`)."""
        if isinstance(provider, str):
            from valuesim.plugins import get_provider_factory

            provider = get_provider_factory(provider)
        self.factory: ProviderFactory = provider
        self.spec = spec
        # Fail before any request (and before loading anything) when the config asks
        # for what the provider cannot give.
        caps = spec_capabilities(provider, spec)
        self.estimator: Estimator = check_capabilities(provider.name, caps, spec)
        self.decoding = decoding_for(spec, self.estimator, caps)
        #: what every answer of this engine measures (recorded in run summaries)
        self.answer_rule: str = self.decoding.answer_rule or (
            STATED if self.estimator == "verbalized" else "answer_start"
        )
        self._cancel = cancel if cancel is not None else interrupt.CANCEL
        self._log = log if log is not None else _stderr
        self.cache = (
            ResponseCache(resolve_cache_dir(cache_dir), cancel=self._cancel, log=self._log)
            if cache_dir is not None else None
        )
        self._tmp_state: tempfile.TemporaryDirectory[str] | None = None
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        prices = prices or {}
        self.price = prices.get(spec.model)
        self.label = label or f"{provider.name}/{spec.model}"
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.progress_every_s = log_interval() if progress_every_s is None else progress_every_s
        self._progress: Progress | None = None
        self.retry_flagged = retry_flagged
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._halt = threading.Event()  # this run's own stop (an interrupt seen here)
        self._announced_until = 0.0  # monotonic end of the last retry wait announced
        self.grace_s = grace_s
        self.carry_over = carry_over
        self._journal: RunJournal | None = None
        self._provider: Provider | None = None
        self._provider_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        # Answers reported one by one (AnswerSink): which are saved, and whether the
        # run still takes them (a call abandoned after Ctrl-C may land after the run
        # reported what it saved; the cache may be closed by then).
        self._sink_lock = threading.Lock()
        self._saved: set[str] = set()
        self._accepting = False
        # Answers waiting for the next commit (group commit, see _save): filled under
        # _queue_lock, drained by whichever thread holds _sink_lock next.
        self._queue_lock = threading.Lock()
        self._pending: list[tuple[str, AnswerDistribution]] = []
        self.summary = RunSummary(provider=provider.name, model=spec.model)
        settings: dict[str, object] = {"precision": spec.precision}
        # Options the factory declares as transport (timeouts, batch polling, which
        # variable holds the key) never change an answer, so they stay out of the key:
        # changing a timeout must not invalidate answers already paid for. Device,
        # threads and batch size stay in: they can change the floating-point result.
        changing = answer_options(getattr(provider, "options", None), spec.options)
        if changing:
            settings["options"] = changing
        self._key_settings = settings

    @classmethod
    def from_params(cls, params: Params, model: str, **kwargs: object) -> Engine:
        """The engine for one entry of the params' ``models`` section."""
        spec = params.models[model]
        sim = params.simulate
        return cls(
            spec.provider,
            spec,
            sim.cache_dir,
            batch_size=sim.batch_size,
            max_retries=sim.max_retries,
            timeout_s=sim.timeout_s,
            prices=sim.prices,
            **{"carry_over": True, **kwargs},  # type: ignore[arg-type]
        )

    # -- requests and keys -------------------------------------------------------

    def request(
        self, messages: Sequence[ChatMessage], answers: Sequence[str], sample_index: int = 0
    ) -> ScoreRequest:
        """A request with this engine's decoding settings."""
        return ScoreRequest(tuple(messages), tuple(answers), self.decoding, sample_index)

    def key(self, request: ScoreRequest) -> str:
        return cache_key(
            self.factory.name, self.spec.model, self.spec.revision, request, self._key_settings
        )

    def cached(
        self, requests: Sequence[ScoreRequest], keys: Sequence[str] | None = None
    ) -> dict[str, AnswerDistribution]:
        """The answers to ``requests`` already in the response cache, by key: what
        :meth:`run` would not send (``valuesim plan``, the ask preflight, the cost ceiling).
        ``keys``: the requests' keys when the caller has them (a plan hashes millions)."""
        if self.cache is None:
            return {}
        keys = [self.key(r) for r in requests] if keys is None else keys
        found = self.cache.get_many(keys, _answer_counts(keys, requests))
        if self.retry_flagged:
            found = {k: v for k, v in found.items() if not v.flag}
        return found

    # -- the provider, loaded only when something must be sent ------------------

    @property
    def provider(self) -> Provider:
        with self._provider_lock:
            if self._provider is None:
                self._provider = self._create_provider()
            return self._provider

    def _create_provider(self) -> Provider:
        if self.cache is not None:
            state_dir = self.cache.state_dir(self.factory.name)
        else:
            self._tmp_state = tempfile.TemporaryDirectory(prefix="valuesim-state-")
            state_dir = Path(self._tmp_state.name)
        from valuesim.llm.fleet import create_provider

        # A list of base_urls is a fleet (valuesim.llm.fleet): one provider per server.
        provider = create_provider(self.factory, self.spec, state_dir=state_dir, log=self._log)
        # The loaded model may offer less than its provider in general (e.g. an API
        # model without log-probabilities).
        check_capabilities(self.factory.name, provider.capabilities, self.spec)
        # Providers that report answers one by one (APIProvider, each server of a fleet).
        for p in (provider, *getattr(provider, "providers", ())):
            if hasattr(p, "answer_sink"):
                p.answer_sink = self
        return provider

    # -- running -----------------------------------------------------------------

    def run(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        """One distribution per request, in order; only cache misses reach the provider.

        Raises :class:`RunInterrupted` on a cancel (Ctrl-C), after saving what finished.
        """
        t0 = time.perf_counter()
        self.summary = summary = RunSummary(provider=self.factory.name, model=self.spec.model)
        self._halt = threading.Event()
        journal = self._journal = (
            RunJournal(self.cache.directory / JOURNAL_DIR, self.factory.name, self.spec.model)
            if self.cache is not None else None
        )
        earlier = Paid()
        try:
            if journal is not None and self.carry_over:
                earlier = journal.take_over_dead()
            keys = [self.key(r) for r in requests]
            bad_before = self.cache.bad_rows if self.cache is not None else 0
            found = (
                self.cache.get_many(keys, _answer_counts(keys, requests))
                if self.cache is not None else {}
            )
            if self.cache is not None and self.cache.bad_rows > bad_before:
                # the counter is per cache object: this run's share is the difference
                summary.bad_cache_rows = self.cache.bad_rows - bad_before
                self._log(f"{self.label}: {summary.bad_cache_rows} cached answers were unreadable "
                          "and will be re-scored")
            if self.retry_flagged:
                found = {k: v for k, v in found.items() if not v.flag}
            todo: dict[str, ScoreRequest] = {}
            for k, r in zip(keys, requests, strict=True):
                if k not in found:
                    todo.setdefault(k, r)
            summary.requests = len(requests)
            summary.unique_requests = len(set(keys))
            summary.cache_hits = sum(k in found for k in keys)
            if todo:
                found.update(self._send_claimed(todo))
        except BaseException:
            # Not reported: this run's journal (and those it took over) wait for the next run.
            if journal is not None:
                journal.release()
            raise
        finally:
            summary.wall_s = time.perf_counter() - t0
        results = [found[k] for k in keys]
        summary.flagged = sum(bool(r.flag) for r in results)
        if journal is not None:
            summary.add_earlier(earlier)
            journal.finish()  # the caller reports this summary: nothing left unreported
        return results

    def _send_claimed(self, todo: Mapping[str, ScoreRequest]) -> dict[str, AnswerDistribution]:
        """:meth:`_send` what no other live run on this cache is asking; wait for its
        answers to the rest (sending those whose claims end unanswered)."""
        if self.cache is None:
            return self._send(todo)
        cache = self.cache
        done: dict[str, AnswerDistribution] = {}
        left = dict(todo)
        try:
            while left:
                try:
                    # Takes the write lock: nothing is sent while another process holds it.
                    theirs = cache.claim(list(left))
                except Interrupted as exc:
                    raise RunInterrupted(
                        f"{self.label}: stopped while waiting for the response cache {cache.path}, "
                        "locked by another process; nothing was sent in this run",
                        signum=exc.signum,
                    ) from None
                mine = {k: r for k, r in left.items() if k not in theirs}
                # Another run may have answered a prompt just before this one claimed it.
                answered = self._stored(mine)
                done.update(answered)
                with self._stats_lock:
                    self.summary.cache_hits += len(answered)
                mine = {k: r for k, r in mine.items() if k not in answered}
                if mine:
                    done.update(self._send(mine))
                left = {k: r for k, r in left.items() if k in theirs}
                if left:
                    left = self._await_others(left, theirs, done)
        finally:
            try:
                cache.release_claims()
            except (Interrupted, DataError):
                pass  # claims of a process that has exited are stale: nobody waits for them
        return done

    def _stored(self, todo: Mapping[str, ScoreRequest]) -> dict[str, AnswerDistribution]:
        """The answers to ``todo`` in the cache now (flagged ones left out when retrying them)."""
        assert self.cache is not None
        bad_before = self.cache.bad_rows
        found = self.cache.get_many(list(todo), _answer_counts(list(todo), list(todo.values())))
        self.cache.bad_rows = bad_before  # the run's first lookup counted them already
        if self.retry_flagged:
            found = {k: v for k, v in found.items() if not v.flag}
        return found

    def _await_others(
        self,
        left: Mapping[str, ScoreRequest],
        theirs: Mapping[str, str],
        done: dict[str, AnswerDistribution],
    ) -> dict[str, ScoreRequest]:
        """Wait for other runs' answers to ``left`` (added to ``done``, counted as cached);
        the prompts whose claims ended without an answer, to claim and send."""
        assert self.cache is not None
        owners = ", ".join(sorted(set(theirs.values())))
        self._log(
            f"{self.label}: {len(left)} prompts are being asked by another run on this cache "
            f"({owners}); waiting for its answers instead of paying for them again"
        )
        pending = dict(left)
        while True:
            got = self._stored(pending)
            if got:
                done.update(got)
                with self._stats_lock:
                    self.summary.cache_hits += len(got)
                pending = {k: r for k, r in pending.items() if k not in got}
            if not pending:
                return {}
            still = self.cache.claimed_by_others(list(pending))
            if len(still) < len(pending):
                return pending  # some claims ended unanswered: claim them (and re-check the rest)
            try:
                stop = self._cancel.wait(_AWAIT_OTHERS_S) or self._halt.is_set()
            except Interrupted:  # the signal handler raises right here in the main thread
                stop = True
            if stop:
                raise RunInterrupted(
                    f"{self.label}: {self.summary.sent} answers received in this run are saved in "
                    f"the response cache; stopped while waiting for another run's answers to "
                    f"{len(pending)} prompts; rerun the same command to resume",
                    signum=interrupt.received_signal(),
                )

    def _send(self, todo: Mapping[str, ScoreRequest]) -> dict[str, AnswerDistribution]:
        provider = self.provider
        chunks = self._plan(provider, list(todo.items()))
        local = bool(getattr(provider, "local", False))
        # A fleet keeps spec.concurrency in flight per server (its own bound, enforced
        # per server); one server gets spec.concurrency.
        in_flight = int(getattr(provider, "max_in_flight", self.spec.concurrency))
        workers = 1 if local else min(in_flight, len(chunks))
        servers = int(getattr(provider, "servers", 1))
        fleet = f" on {servers} servers, at most {self.spec.concurrency} each" if servers > 1 else ""
        self._log(
            f"{self.label}: {self.summary.requests} requests, {self.summary.cache_hits} cached, "
            f"{len(todo)} to send in {len(chunks)} chunks ({workers} in flight{fleet})"
        )
        stats = getattr(provider, "server_stats", None)
        before = stats() if callable(stats) else None
        done: dict[str, AnswerDistribution] = {}
        failure: BaseException | None = None
        with self._sink_lock:
            self._saved = set()
            self._accepting = True
            with self._queue_lock:
                self._pending = []
        # Moved by _save, answer by answer where the provider reports each one.
        progress = self._progress = Progress(
            self.label, len(todo), terminal=self.progress, log=self._log, every_s=self.progress_every_s
        )
        # Set by the first chunk that fails for good: chunks not yet started then
        # return without calling the provider (a worker may pick one up before the
        # main thread gets to cancel it).
        stop = threading.Event()
        interrupted: Interrupted | None = None
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="valuesim-engine")
        submitted: list[Future[dict[str, AnswerDistribution]]] = []
        try:
            submitted.extend(pool.submit(self._run_chunk, provider, chunk, local, stop) for chunk in chunks)
            pending = set(submitted)
            while pending:
                # A timeout, so a cancel set by another thread is seen too (the
                # signal handler also raises Interrupted right here).
                finished, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                if self._stopping():
                    raise Interrupted(signum=interrupt.received_signal())
                for fut in finished:
                    if fut.cancelled():
                        continue
                    exc = fut.exception()
                    if isinstance(exc, Interrupted):
                        raise exc
                    if exc is not None:
                        if failure is None:
                            failure = exc
                            # Stop queued chunks; let the ones in flight finish and be saved.
                            for other in pending:
                                other.cancel()
                        continue
                    done.update(fut.result())
                progress.tick()  # a log line is due even while nothing arrives
        except Interrupted as exc:
            interrupted = exc
        except BaseException:
            # e.g. a plain KeyboardInterrupt where no handler is installed (a notebook)
            self._halt.set()
            raise
        finally:
            # On Ctrl-C: workers see the halt, drop queued chunks, give calls in flight
            # grace_s to land and store themselves, abandon the rest.
            if interrupted is not None:
                self._halt.set()
            pool.shutdown(wait=False, cancel_futures=True)
            # Wait in slices, not in one blocking join: the main thread must keep
            # running bytecode so that a second Ctrl-C's handler runs (and exits) at once.
            # (done() also counts the futures shutdown cancelled; wait() does not.)
            while running := [f for f in submitted if not f.done()]:
                wait(running, timeout=_POLL_S)
            pool.shutdown(wait=True)  # the workers have nothing left: this returns at once
            with self._sink_lock:
                # What was saved is final now: the lines below report it.
                self._accepting = False
                saved_here = sum(k in done or k in self._saved for k in todo)
            progress.close()
            self._progress = None
            if before is not None and callable(stats):
                from valuesim.llm.fleet import stats_since

                self.summary.servers = stats_since(before, stats())
        if interrupted is not None:
            s = self.summary
            raise RunInterrupted(
                f"{self.label}: {s.sent} answers received in this run are saved in the response "
                f"cache ({s.prompt_tokens + s.completion_tokens} tokens, ${s.cost_usd:.4f}), "
                f"{len(todo) - saved_here} still to send; rerun the same command to resume",
                signum=interrupted.signum,
            ) from None
        if failure is not None:
            saved = saved_here + self.summary.cache_hits
            note = f"{saved} finished answers are cached; rerun to resume"
            if isinstance(failure, TransientProviderError):
                raise ProviderError(
                    f"{self.label}: gave up after {self.max_retries + 1} attempts ({failure}); {note}"
                ) from failure
            if isinstance(failure, ProviderError):
                raise ProviderError(f"{self.label}: {failure}; {note}") from failure
            raise failure
        return done

    def _plan(
        self, provider: Provider, items: list[tuple[str, ScoreRequest]]
    ) -> list[list[tuple[str, ScoreRequest]]]:
        """The chunks to send. A fleet says which server takes each request (each
        persona on one server); each server's share is chunked on its own and the
        chunks alternate between servers, so those in flight keep every server busy."""
        assign = getattr(provider, "assign", None)
        if not callable(assign):
            return plan_chunks(items, self.batch_size)
        lanes: dict[int, list[tuple[str, ScoreRequest]]] = {}
        for item, server in zip(items, assign([r for _, r in items]), strict=True):
            lanes.setdefault(int(server), []).append(item)
        per_server = [plan_chunks(lane, self.batch_size) for lane in lanes.values()]
        return [c for row in itertools.zip_longest(*per_server) for c in row if c is not None]

    def _run_chunk(
        self,
        provider: Provider,
        chunk: list[tuple[str, ScoreRequest]],
        local: bool,
        stop: threading.Event,
    ) -> dict[str, AnswerDistribution]:
        if stop.is_set() or self._stopping():
            return {}
        try:
            return self._score_chunk(provider, chunk, local)
        except BaseException:
            stop.set()
            raise

    def _score_chunk(
        self, provider: Provider, chunk: list[tuple[str, ScoreRequest]], local: bool
    ) -> dict[str, AnswerDistribution]:
        keys = [k for k, _ in chunk]
        reqs = [r for _, r in chunk]
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry_if_exception_type(TransientProviderError),
            wait=self._wait,
            sleep=self._retry_sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        raw = retrying(self._attempt, provider, reqs, local)
        if not isinstance(raw, list | tuple) or len(raw) != len(reqs):
            n = len(raw) if isinstance(raw, list | tuple) else type(raw).__name__
            raise ProviderError(f"provider {self.factory.name} returned {n} results for {len(reqs)} requests")
        results = [_checked(self.factory.name, r, d) for r, d in zip(reqs, raw, strict=True)]
        self._save(list(zip(keys, results, strict=True)))  # those not saved one by one already
        return dict(zip(keys, results, strict=True))

    # -- saving answers: per chunk, or one by one as they arrive (AnswerSink) ----------

    def arrived(self, request: ScoreRequest, answer: AnswerDistribution) -> None:
        """A provider's report of one answer, called in its thread: commit it now."""
        try:
            checked = _checked(self.factory.name, request, answer)
        except ProviderError:
            return  # its chunk fails with this error when it returns
        self._save([(self.key(request), checked)])

    def stopping(self) -> bool:
        """The run is being stopped: providers start no new request."""
        return self._stopping()

    def _save(self, items: list[tuple[str, AnswerDistribution]]) -> None:
        """Commit the answers this run has not saved yet, journal and count what they cost.

        Group commit: ``items`` join the queue, and the thread that next holds the
        sink lock commits everything queued in one transaction. Returning means they
        are committed (by this thread, or by the one that held the lock before it,
        which drained them), so an answer is durable no later than with one commit per
        answer, while answers that arrive together (many threads, a fleet) share one
        commit instead of queueing for a commit each. A failed commit puts its answers
        back, so the next thread tries them again (or raises the same error)."""
        with self._queue_lock:
            self._pending.extend(items)
        with self._sink_lock:
            with self._queue_lock:
                batch, self._pending = self._pending, []
            if not self._accepting:
                return  # an abandoned call landed after the run ended: see _send
            try:
                self._commit(batch)
            except BaseException:
                with self._queue_lock:
                    self._pending[:0] = batch
                raise

    def _commit(self, items: list[tuple[str, AnswerDistribution]]) -> None:
        """Store, journal and count ``items`` (called holding the sink lock)."""
        new = list({k: d for k, d in items if k not in self._saved}.items())
        if not new:
            return
        paid = Paid(answers=len(new))
        for _, r in new:
            paid.prompt_tokens += r.usage.prompt_tokens
            paid.completion_tokens += r.usage.completion_tokens
            paid.cached_tokens += r.usage.cached_tokens
            paid.cost_usd += cost_of(r.usage, self.price)
        if self.cache is not None:
            self.cache.put_many(new, provider=self.factory.name, model=self.spec.model)
        self._saved.update(k for k, _ in new)
        if self._progress is not None:
            self._progress.advance(len(new))
        if self._journal is not None:
            try:
                self._journal.record(paid)
            except OSError as exc:  # a full disk: the answers are saved, say why it stops
                if self.cache is None:
                    raise
                raise self.cache.os_error(exc, "the paid-answers journal") from exc
        with self._stats_lock:
            s = self.summary
            s.sent += paid.answers
            s.prompt_tokens += paid.prompt_tokens
            s.completion_tokens += paid.completion_tokens
            s.cached_tokens += paid.cached_tokens
            s.cost_usd += paid.cost_usd

    def _attempt(
        self, provider: Provider, reqs: list[ScoreRequest], local: bool
    ) -> list[AnswerDistribution]:
        if self._stopping():
            raise Interrupted(signum=interrupt.received_signal())  # start nothing new
        with self._stats_lock:
            self.summary.provider_calls += 1
        if local:
            # In-process models don't hang, and a computation cannot be abandoned
            # safely: an interrupt stops a local run between chunks.
            return provider.score(reqs)
        # A watchdog thread per call: a hung server must not hang the run, nor hold
        # up an interrupt. The abandoned call keeps its daemon thread until the SDK
        # gives up on its own. A batch API call waits minutes to hours by design and
        # bounds itself (the provider's batch_wait_s, resumable by id): no timeout.
        timeout = None if self.spec.batch_api else self.timeout_s
        box: dict[str, object] = {}

        def call() -> None:
            try:
                box["value"] = provider.score(reqs)
            except BaseException as exc:
                box["error"] = exc

        t = threading.Thread(target=call, name="valuesim-provider-call", daemon=True)
        t.start()
        self._watch(t, timeout)
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    def _stopping(self) -> bool:
        return self._halt.is_set() or self._cancel.is_set()

    def _watch(self, call: threading.Thread, timeout: float | None) -> None:
        """Wait for a provider call in short slices; raise on its timeout or an interrupt.

        After an interrupt the call gets ``grace_s`` more: its answer is paid for, and
        keeping it spares the next run from paying again.
        """
        start = time.monotonic()
        grace_end: float | None = None
        while True:
            call.join(_POLL_S)
            if not call.is_alive():
                return
            now = time.monotonic()
            if self._stopping():
                grace_end = grace_end if grace_end is not None else now + self.grace_s
                if now >= grace_end:
                    raise Interrupted(signum=interrupt.received_signal())
            elif timeout is not None and now - start >= timeout:
                raise TransientProviderError(f"no answer within {timeout:g}s")

    def _retry_sleep(self, seconds: float) -> None:
        """The backoff wait; an interrupt ends it at once (nothing is in flight then)."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            end = time.monotonic() + seconds
            while not self._stopping() and (left := end - time.monotonic()) > 0:
                self._halt.wait(min(_POLL_S, left))
        if self._stopping():
            raise Interrupted(signum=interrupt.received_signal())

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Capped at the call timeout: `Retry-After: 3600` obeyed on every retry kept a
            # run silent for hours. A server still refusing after the capped wait uses up
            # the retries and the run stops with one line; a rerun resumes.
            return min(max(float(retry_after), 0.0), self.timeout_s)
        # Exponential backoff with jitter, so parallel chunks don't retry in lockstep.
        base = min(_MAX_BACKOFF_S, self.backoff_s * 2 ** (state.attempt_number - 1))
        return base * (0.5 + random.random() / 2)  # jitter, not security

    def _count_retry(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        with self._stats_lock:
            self.summary.retries += 1
            now = time.monotonic()
            # one line per wait, not one per chunk: chunks in flight together fail together
            announce = wait > ANNOUNCE_WAIT_S and now >= self._announced_until
            if announce:
                self._announced_until = now + wait
        if announce:
            exc = state.outcome.exception() if state.outcome is not None else None
            asked = getattr(exc, "retry_after", None)
            capped = (
                f" (the server asked for {float(asked):g} s; capped at simulate.timeout_s)"
                if asked is not None and float(asked) > wait else ""
            )
            self._log(
                f"{self.label}: {str(exc)[:200]}; waiting {wait:.0f} s before attempt "
                f"{state.attempt_number + 1} of {self.max_retries + 1}{capped}"
            )

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self._tmp_state is not None:
            self._tmp_state.cleanup()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

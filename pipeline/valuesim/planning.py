"""Plan before paying: what the study's simulate runs would send, cost and take.

For every (model, method) of ``simulate.models`` x ``simulate.methods`` the plan
counts the requests the simulate stage sends (:func:`stage_prompts`,
:func:`stage_requests`), rendered by the same code in parts (:func:`stage_blocks`:
system messages times shared question rows) and counted from the parts
(:mod:`valuesim.prompt_counts`); each prompt is built only for a model the response
cache may hold answers of (the lookup needs its key) or whose tokenizer counts it. It
reports

- requests (map-item prompts included), unique ones (identical prompts are sent
  once), those already in the response cache (looked up with the engine's own keys,
  :meth:`valuesim.llm.engine.Engine.cached`) and those left to send;
- prompt tokens of the requests to send: counted with the model's tokenizer when the
  model is local (the ``transformers`` provider, the same ids its ``usage`` reports),
  else estimated at ~4 characters a token of message text, and said which;
- extra requests for exact prefix splits: an ``openai``-provider model with
  ``options.server`` vllm, sglang or auto asks once more per admissible answer that is
  a proper prefix of another ("1" on a 1-10 scale), see
  :func:`valuesim.llm.answer_estimates.prefix_answers`;
- cost at ``simulate.prices`` (:func:`valuesim.llm.engine.cost_of`; prompt tokens at
  the full input price, replies at the most tokens the estimator asks for: upper
  bounds); local models cost nothing, a model without a price is shown unpriced;
- time at the throughput this project's runs have seen for the model
  (``reports/runs/*.json``: sent / wall_s) or at an assumed requests/s.

Inputs: the pipeline's outputs when they exist (selected countries, kept questions,
personas: what the stage will read), else the params alone (:func:`params_inputs`):
``countries.select`` (+ ``extra``), every target question of the bank (the
missing-data filter can only drop some: an upper bound) and ``personas.n_per_country``
personas sampled as the personas stage samples them from ``data.source``, capped at
the respondents a country has (as the stage caps them). Countries the source lacks get
stand-in personas (the source's other respondents, relabelled) so that their prompts
have realistic lengths; the plan says so in its notes.

The study's other paid stages are planned too, as rows of their own: the items of
``data.new_questions`` for every (model, method), and with ``analysis.shapley`` on (and
the pipeline's outputs there) the Shapley coalitions of every model
(:mod:`valuesim.paid_stages`). :func:`plan_requests` plans any list of requests the
same way (``valuesim ask``, ``valuesim score``). The guard that acts on a plan,
``simulate.max_cost_usd``, is :mod:`valuesim.spending`.
"""

from __future__ import annotations

import gc
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from valuesim.errors import ConfigError, DataError
from valuesim.prompt_counts import (
    CHARS_PER_TOKEN,
    Block,
    MethodCounts,
    Prompt,
    Row,
    SendCounts,
    counts_from_blocks,
    counts_from_prompts,
    prefix_splits,
    prompts_tokens,
    unique_prompts,
)
from valuesim.survey.bank import QuestionBank

if TYPE_CHECKING:
    from valuesim.config import Params, PriceEntry
    from valuesim.culturalmap.item_prompts import MapPrompt
    from valuesim.llm.engine import Engine
    from valuesim.llm.types import ScoreRequest
    from valuesim.plan_cache import StoredPlan
    from valuesim.prompts import PromptUnit

#: Reply tokens per request, at most: what the API plugins ask for (openai's max_tokens
#: defaults: 2 for top-k, 8 per sample, 300 for a verbalized distribution).
REPLY_TOKENS: dict[str, int] = {"logprobs": 1, "top_logprobs": 2, "sampling": 8, "verbalized": 300}
#: options.server values of the openai plugin that score prefixes exactly (one more
#: request per prefix answer); "auto" is counted as if the server supports it.
SPLIT_SERVERS = ("vllm", "sglang", "auto")
LOCAL_PROVIDERS = ("transformers",)


# -- the stage's requests (shared with valuesim.stages.simulate) ------------------------


@dataclass(frozen=True)
class StageInputs:
    """What the simulate stage plans prompts from, and where each part came from."""

    bank: QuestionBank
    countries: tuple[str, ...]
    questions: tuple[str, ...]
    personas: Callable[[str], pl.DataFrame]  # method -> its persona table
    notes: tuple[str, ...] = ()
    from_outputs: bool = True  # all of it read from the pipeline's outputs


def stage_prompts(
    params: Params, method: str, inputs: StageInputs
) -> tuple[list[PromptUnit], list[MapPrompt]]:
    """The target prompts and (with ``simulate.map_items``) the map-item prompts of one method."""
    from valuesim.culturalmap.item_prompts import plan_map_prompts
    from valuesim.prompts import plan_prompts

    personas = inputs.personas(method)
    guidance = params.prompts.guidance
    units = plan_prompts(method, personas, inputs.bank, list(inputs.questions),
                         list(inputs.countries), guidance)
    maps = (plan_map_prompts(method, personas, inputs.bank, list(inputs.countries), guidance)
            if params.simulate.map_items else [])
    return units, maps


def stage_blocks(params: Params, method: str, inputs: StageInputs) -> tuple[list[Block], int]:
    """:func:`stage_prompts` in parts: (system message, row) blocks, targets first, and how
    many of the prompts are map-item prompts. The same prompts, rendered by the same code
    (:func:`valuesim.prompts.prompt_parts`), with one row object per distinct row: what a
    plan counts needs neither a PromptUnit nor a tuple for each prompt."""
    from valuesim.culturalmap.item_prompts import map_prompt_parts
    from valuesim.prompts import prompt_parts

    personas = inputs.personas(method)
    guidance = params.prompts.guidance
    blocks: list[Block] = []
    rows: dict[int, Row] = {}  # by id of the stage's row: one of ours each
    for _, _, _, head, _, questions in prompt_parts(method, personas, inputs.bank, list(inputs.questions),
                                                    list(inputs.countries), guidance):
        if (row := rows.get(id(questions))) is None:
            row = rows[id(questions)] = [((user,), answers) for user, answers in questions]
        blocks.append((head, row))
    n_map = 0
    if params.simulate.map_items:
        for _, _, head, _, items in map_prompt_parts(method, personas, inputs.bank, list(inputs.countries),
                                                     guidance):
            if (row := rows.get(id(items))) is None:
                row = rows[id(items)] = [(tail, answers) for tail, answers, *_ in items]
            blocks.append((head, row))
            n_map += len(row)
    return blocks, n_map


def blocks_prompts(blocks: Sequence[Block]) -> list[Prompt]:
    """Every prompt of ``blocks``, as (messages, answers), in order."""
    return [((head, *tail), answers) for head, row in blocks for tail, answers in row]


def stage_requests(
    engine: Engine, units: Sequence[PromptUnit], map_prompts: Sequence[MapPrompt]
) -> list[ScoreRequest]:
    """One request per prompt, targets first, with ``engine``'s decoding settings."""
    return ([engine.request(u.messages, u.answers) for u in units]
            + [engine.request(p.unit.messages, p.unit.answers) for p in map_prompts])


def _personas_from_outputs(method: str) -> pl.DataFrame:
    from valuesim import artifacts
    from valuesim.methods import get_method

    # country-level methods need no personas
    return pl.DataFrame() if get_method(method).persona is None else artifacts.method_personas(method)


def outputs_inputs(params: Params) -> StageInputs:
    """The simulate stage's inputs, read from the pipeline's outputs (as the stage reads them)."""
    from valuesim import artifacts
    from valuesim.survey.bank import load_bank

    bank = load_bank(params.data.questions)
    questions = tuple(artifacts.kept_questions())  # read in the stage's order: same first error
    countries = tuple(artifacts.selected_countries())
    return StageInputs(bank, countries, questions, _personas_from_outputs)


# -- inputs from params alone -------------------------------------------------------------


def _respondents(
    params: Params, bank: QuestionBank, countries: Sequence[str], project: Path
) -> tuple[pl.DataFrame, str, list[str]]:
    """(respondents of the countries the source has, where from, countries it lacks)."""
    from valuesim.personas.on_demand import respondents_for

    source = params.data.source
    try:
        frame, where, _ = respondents_for(source, params, bank, countries, project)
        return frame, where, []
    except DataError:
        pass
    parts, lacking, where = [], [], source
    for c in countries:  # one at a time: which ones does it have?
        try:
            frame, where, _ = respondents_for(source, params, bank, [c], project)
            parts.append(frame)
        except DataError:
            lacking.append(c)
    if parts:
        return pl.concat(parts, how="diagonal_relaxed"), where, lacking
    return pl.DataFrame(), f"{source} (not readable here)", list(countries)


def params_inputs(params: Params, project: Path = Path()) -> StageInputs:
    """The simulate stage's inputs as the upstream stages would make them from ``params``."""
    from valuesim.methods import get_method
    from valuesim.personas.on_demand import personas_for, under
    from valuesim.survey.bank import load_bank

    if params.countries.select == "hull":
        raise ConfigError(
            "countries.select is hull: the countries come from the map stage; run `dvc repro map` "
            "first or list the countries in countries.select"
        )
    bank = load_bank(under(project, params.data.questions))
    countries = list(dict.fromkeys([*params.countries.select, *params.countries.extra]))
    questions = [i.id for i in bank.targets]
    n = params.personas.n_per_country
    notes = [f"questions: all {len(questions)} target questions of the bank (the human stage's "
             "missing-data filter may drop some: request counts are upper bounds)"]
    persona_methods = [m for m in params.simulate.methods if get_method(m).persona is not None]
    if not persona_methods:
        return StageInputs(bank, tuple(countries), tuple(questions), _no_personas, tuple(notes), False)

    real, where, lacking = _respondents(params, bank, countries, project)
    have = dict(real.group_by("country").len().iter_rows()) if real.height else {}
    short = [f"{c} {have[c]}" for c in countries if c in have and have[c] < n]
    if short:
        notes.append(f"personas: fewer respondents than personas.n_per_country ({n}) in "
                     f"{where} for {', '.join(short)}: all of them are used, as the personas stage does")
    pool = real
    if lacking:
        pool = pl.concat([real, _stand_ins(params, bank, project, lacking, countries)]
                         if real.height else [_stand_ins(params, bank, project, lacking, countries)],
                         how="diagonal_relaxed")
        notes.append(f"personas: {', '.join(lacking)} not in {where}: {n} stand-in personas each "
                     "(synthetic respondents of other countries of the shipped demo population, "
                     "relabelled) so that prompts have realistic lengths")
    made: dict[str, pl.DataFrame] = {}

    def personas(method: str) -> pl.DataFrame:
        if get_method(method).persona is None:
            return pl.DataFrame()
        if method not in made:
            made[method] = personas_for(params, bank, pool, countries, method, n, project)
        return made[method]

    notes.insert(0, f"personas: sampled from {where} with personas.seed as the personas stage does")
    return StageInputs(bank, tuple(countries), tuple(questions), personas, tuple(notes), False)


def _no_personas(method: str) -> pl.DataFrame:
    return pl.DataFrame()


def _stand_ins(
    params: Params, bank: QuestionBank, project: Path, lacking: Sequence[str], study: Sequence[str],
) -> pl.DataFrame:
    """``personas.n_per_country`` respondents for each country in ``lacking``: synthetic
    respondents of demo countries outside the study, relabelled. Countries of the study
    are never borrowed: without nationality their personas' prompts would repeat the
    real ones', and the plan would count them once."""
    from valuesim.config import DataParams
    from valuesim.personas.on_demand import respondents_for, under
    from valuesim.survey.demo.population import load_aggregates

    # the study's own demo population when it is one, else the shipped one
    demo = params.data.source if params.data.is_demo else DataParams().source
    n = params.personas.n_per_country
    try:
        spare = [c for c in load_aggregates(under(project, demo)).countries if c not in study]
        per_country = params.data.demo_respondents_per_country
        need = -(-n // per_country)  # demo countries per stand-in country
        if need * len(lacking) > len(spare):
            raise DataError(f"{len(spare)} demo countries outside the study, "
                            f"{need * len(lacking)} needed")
        parts = []
        for i, country in enumerate(lacking):
            borrowed = spare[i * need:(i + 1) * need]
            frame = respondents_for(demo, params, bank, borrowed, project)[0]
            parts.append(frame.with_columns(
                pl.lit(country).alias("country"),
                (pl.lit(f"{country}~") + pl.col("respondent_id")).alias("respondent_id"),
            ))
    except (DataError, OSError) as exc:
        raise DataError(
            f"plan: no respondents for {', '.join(lacking)} in data.source {params.data.source}, and "
            f"no stand-ins from the demo population {demo} ({exc}); run from the project root "
            "or fix data.source"
        ) from None
    return pl.concat(parts, how="diagonal_relaxed")


def study_inputs(
    params: Params, project: Path = Path(), *, use_outputs: bool = True, why_not: str = "",
) -> StageInputs:
    """The pipeline's outputs where they all exist (and ``use_outputs``), else
    :func:`params_inputs`; ``why_not``: why the outputs are not used (for the note)."""
    from valuesim import paths
    from valuesim.methods import get_method

    needed = [paths.SELECTED_COUNTRIES, paths.KEPT_QUESTIONS] + [
        paths.personas_for(m) for m in params.simulate.methods if get_method(m).persona is not None
    ]
    if use_outputs:
        if all((project / p).exists() for p in needed):
            inputs = outputs_inputs(params)
            note = f"inputs: the pipeline's outputs ({', '.join(map(str, needed))})"
            return StageInputs(inputs.bank, inputs.countries, inputs.questions, inputs.personas, (note,))
        why_not = why_not or "the pipeline's outputs are not all there yet"
    inputs = params_inputs(params, project)
    why = why_not or "not asked to read the pipeline's outputs"
    return StageInputs(inputs.bank, inputs.countries, inputs.questions, inputs.personas,
                       (f"planned from params alone ({why})", *inputs.notes), False)


# -- the plan ---------------------------------------------------------------------------


@dataclass
class PlanRow:
    model: str
    method: str
    provider: str
    provider_model: str
    estimator: str
    requests: int  # as the run's summary counts them (map prompts included)
    map_requests: int
    unique: int
    cached: int  # requests whose answer is in the cache (the run's cache_hits)
    to_send: int  # unique requests not cached
    prompt_tokens: int  # of the requests to send
    tokens_counted: str  # "tokenizer" or "estimate"
    split_requests: int  # extra requests for exact prefix splits, of those to send
    reply_tokens: int  # at most, of everything to send
    cost_usd: float | None  # None: no price for a model that is not local
    time_s: float | None
    rate: float | None  # requests/s the time assumes
    rate_source: str
    stage: str = "simulate"  # or new_questions, shapley, ask, score: who sends them


@dataclass
class Plan:
    rows: list[PlanRow]
    notes: list[str] = field(default_factory=list)
    countries: tuple[str, ...] = ()
    questions: int = 0

    @property
    def cost_usd(self) -> float:
        return math.fsum(r.cost_usd or 0.0 for r in self.rows)

    @property
    def paid_rows(self) -> list[PlanRow]:
        return [r for r in self.rows if r.cost_usd]

    def totals(self) -> dict[str, Any]:
        times = [r.time_s for r in self.rows]
        return {
            "requests": sum(r.requests for r in self.rows),
            "cached": sum(r.cached for r in self.rows),
            "to_send": sum(r.to_send for r in self.rows),
            "split_requests": sum(r.split_requests for r in self.rows),
            "prompt_tokens": sum(r.prompt_tokens for r in self.rows),
            "cost_usd": self.cost_usd,
            # runs of the DVC matrix go one after another
            "time_s": None if any(t is None for t in times) else math.fsum(times),  # type: ignore[arg-type]
        }

    def to_json(self) -> dict[str, Any]:
        return {"countries": list(self.countries), "questions": self.questions,
                "rows": [asdict(r) for r in self.rows], "totals": self.totals(), "notes": self.notes}


def observed_rates(runs_dir: Path) -> dict[tuple[str, str], float]:
    """Requests sent per second of wall time, by (provider, provider model), over the
    run statistics the simulate stage wrote (``reports/runs/*.json``)."""
    sent: Counter[tuple[str, str]] = Counter()
    wall: dict[tuple[str, str], float] = {}
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
            key = (str(stats["provider"]), str(stats["model"]))
            n, s = int(stats["sent"]), float(stats["wall_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # informational files: a damaged one just gives no rate
        if n > 0 and s > 0:
            sent[key] += n
            wall[key] = wall.get(key, 0.0) + s
    return {k: sent[k] / wall[k] for k in sent}


def _is_local(engine: Engine) -> bool:
    return engine.factory.name in LOCAL_PROVIDERS or bool(getattr(engine.factory, "local", False))


def _price(params: Params, engine: Engine) -> PriceEntry | None:
    if _is_local(engine):
        return None
    return params.simulate.prices.get(engine.spec.model)


def is_paid(params: Params, engine: Engine) -> bool:
    """Whether answers from this engine's model cost money: a price in ``simulate.prices``
    that is not all zeros, and not a local model."""
    price = _price(params, engine)
    return price is not None and not price.free


def is_own_server(engine: Engine) -> bool:
    """A vLLM or SGLang server of your own (an ``openai`` model with ``options.server``
    vllm, sglang or auto): unpriced, it is free."""
    return engine.factory.name == "openai" and engine.spec.options.get("server") in SPLIT_SERVERS


def needs_price(params: Params, engine: Engine) -> bool:
    """A model that may cost money and has no price: remote, and not a server of your own."""
    return not (_is_local(engine) or is_own_server(engine)) and _price(params, engine) is None


def plan_engine(params: Params, model: str, project: Path, stack: ExitStack) -> Engine:
    """An engine for keys and cache lookups only: it loads no model, and opens the
    response cache only when one exists (a plan must not create one)."""
    from valuesim.llm.cache import DB_NAME, resolve_cache_dir
    from valuesim.llm.engine import Engine

    spec, sim = params.models[model], params.simulate
    directory = resolve_cache_dir(sim.cache_dir, cwd=project)
    cache = directory if (directory / DB_NAME).exists() else None
    return stack.enter_context(Engine(spec.provider, spec, cache, batch_size=sim.batch_size,
                                      prices=sim.prices, progress=False, log=lambda _: None))


def _cache_states(engines: dict[str, Engine]) -> dict[str, tuple[bool, str]]:
    """Per model: whether the response cache may hold its answers (a cheap look before
    hashing every request), and a fingerprint of what it holds of them: its rows' count
    and age range, and the key of a probe request (so that a change of how keys are made
    is a change too). A stored plan's rows of a model hold while its fingerprint does."""
    from valuesim.llm.types import ChatMessage

    stats: dict[Path, list[Any]] = {}
    states = {}
    for model, engine in engines.items():
        if engine.cache is None:
            states[model] = (False, "no response cache")
            continue
        if engine.cache.path not in stats:  # one scan of the cache, not one per model
            stats[engine.cache.path] = engine.cache.stats()
        groups = [[g.provider, g.model, g.rows, g.oldest, g.newest] for g in stats[engine.cache.path]
                  if g.provider in (None, engine.factory.name) and g.model in (None, engine.spec.model)]
        probe = engine.key(engine.request((ChatMessage("user", "plan probe"),), ("1", "2")))
        states[model] = (bool(groups), json.dumps([probe, groups]))
    return states


def local_tokenizer(engine: Engine) -> Any:
    """The tokenizer of a local (transformers) model, without loading its weights."""
    from transformers import AutoTokenizer

    from valuesim.llm.local_model import default_model_cache, resolve_model

    source, _ = resolve_model(engine.spec.model, default_model_cache())
    kw = {"revision": engine.spec.revision} if engine.spec.revision else {}
    return AutoTokenizer.from_pretrained(source, **kw)


class _MethodPrompts:
    """One (stage, method)'s prompts, counted once for every model that is asked them.

    Prompts do not depend on the model; only the cache lookup does. The counts come from
    the prompts' parts (:mod:`valuesim.prompt_counts`) or a stored plan; the prompts
    themselves are built only for a model whose answers the response cache may hold (the
    lookup needs each request's key) or whose tokens a tokenizer counts.
    """

    def __init__(
        self, *, blocks: Callable[[], tuple[list[Block], int]] | None = None,
        listed: Callable[[], list[Prompt]] | None = None, counts: MethodCounts | None = None,
    ) -> None:
        self._blocks, self._listed, self._counts = blocks, listed, counts
        self._made: tuple[list[Block], int] | None = None
        self._unique: tuple[list[Prompt], list[int]] | None = None

    def _parts(self) -> tuple[list[Block], int]:
        if self._made is None:
            assert self._blocks is not None
            self._made = self._blocks()
        return self._made

    @property
    def counts(self) -> MethodCounts:
        if self._counts is None:
            if self._blocks is not None:
                self._counts = counts_from_blocks(*self._parts())
            else:
                assert self._listed is not None
                self._counts = counts_from_prompts(self._listed())
        return self._counts

    def unique(self) -> tuple[list[Prompt], list[int]]:
        """Every unique prompt and how many requests ask it."""
        if self._unique is None:
            if self._blocks is not None:
                self._unique = unique_prompts(self._parts()[0])
            else:
                assert self._listed is not None
                counted = Counter(self._listed())
                self._unique = list(counted), list(counted.values())
        return self._unique


def _prompt_tokens(send: Sequence[Prompt], tokenizer: Any) -> int:
    from valuesim.llm.exact_scoring import prompt_token_ids

    return sum(len(prompt_token_ids(tokenizer, messages)) for messages, _ in send)


def _splits_apply(engine: Engine) -> bool:
    """openai-provider models in server mode (options.server) split prefix answers."""
    return (engine.factory.name == "openai"
            and engine.spec.options.get("server") in SPLIT_SERVERS
            and engine.estimator not in ("sampling", "verbalized"))


def _send_counts(engine: Engine, prompts: _MethodPrompts, tokenizer: Any, held: bool) -> SendCounts:
    """What ``engine``'s model still has to send of ``prompts``; ``held``: the response
    cache may hold its answers (else nothing is cached and the counts need no prompt)."""
    splits = _splits_apply(engine)
    counted = "tokenizer" if tokenizer is not None else "estimate"
    if not held and tokenizer is None:
        c = prompts.counts
        return SendCounts(0, c.unique, c.estimated_tokens, counted,
                          c.split_requests if splits else 0, c.split_tokens if splits else 0)
    unique, asked = prompts.unique()
    cached = [False] * len(unique)
    if held:
        requests = [engine.request(m, a) for m, a in unique]
        keys = [engine.key(r) for r in requests]  # once: hashing is most of a lookup's time
        found = engine.cached(requests, keys)
        cached = [k in found for k in keys]
        del requests, keys
    hits = sum(n for n, c in zip(asked, cached, strict=True) if c)
    send = [p for p, c in zip(unique, cached, strict=True) if not c] if hits else unique
    if tokenizer is not None:
        tokens = _prompt_tokens(send, tokenizer)
    else:
        tokens = prompts_tokens(send) if hits else prompts.counts.estimated_tokens
    extra, extra_tokens = (0, 0)
    if splits:
        c = prompts.counts
        extra, extra_tokens = prefix_splits(send) if hits else (c.split_requests, c.split_tokens)
    return SendCounts(hits, len(send), tokens, counted, extra, extra_tokens)


def _row(
    params: Params, model: str, method: str, engine: Engine, counts: MethodCounts, send: SendCounts,
    rate: float | None, rate_source: str, stage: str = "simulate",
) -> PlanRow:
    from valuesim.llm.engine import cost_of
    from valuesim.llm.types import Usage

    per_reply = REPLY_TOKENS.get(engine.estimator, 1) * (
        engine.decoding.samples if engine.estimator == "sampling" else 1
    )
    replies = per_reply * (send.to_send + send.split_requests)
    price = _price(params, engine)
    if _is_local(engine):
        cost: float | None = 0.0
    elif price is None:
        cost = None
    else:
        cost = cost_of(Usage(prompt_tokens=send.prompt_tokens + send.split_tokens,
                             completion_tokens=replies), price)
    work = send.to_send + send.split_requests
    return PlanRow(
        model=model, method=method, provider=engine.factory.name, provider_model=engine.spec.model,
        estimator=engine.estimator, requests=counts.requests, map_requests=counts.map_requests,
        unique=counts.unique, cached=send.cached, to_send=send.to_send, prompt_tokens=send.prompt_tokens,
        tokens_counted=send.tokens_counted, split_requests=send.split_requests, reply_tokens=replies,
        cost_usd=cost, time_s=(work / rate if rate else None) if work else 0.0, rate=rate,
        rate_source=rate_source, stage=stage,
    )


def _rate(
    seen: dict[tuple[str, str], float], engine: Engine, requests_per_s: float | None
) -> tuple[float | None, str]:
    from valuesim.answer_tables import RUNS

    observed = seen.get((engine.factory.name, engine.spec.model))
    if observed is not None:
        return observed, f"seen in {RUNS}"
    if requests_per_s is not None:
        return requests_per_s, "assumed (--requests-per-s)"
    return None, "none seen; pass --requests-per-s"


def plan_requests(
    params: Params, engine: Engine, model: str, method: str, requests: Sequence[ScoreRequest],
    *, stage: str, project: Path = Path(),
) -> PlanRow:
    """The plan of ``requests`` (built with ``engine.request``) as one row: what of them
    is cached, what the rest costs (estimated tokens) and how long it takes at the
    throughput this project has seen for the model."""
    from valuesim.answer_tables import RUNS

    listed = [(r.messages, r.answers) for r in requests]
    prompts = _MethodPrompts(listed=lambda: listed)
    held, _ = _cache_states({model: engine})[model]
    rate, source = _rate(observed_rates(project / RUNS), engine, None)
    return _row(params, model, method, engine, prompts.counts, _send_counts(engine, prompts, None, held),
                rate, source, stage)


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a plan builds its prompts, and back on (as
    it was) after. A paper-scale method makes a million prompt tuples that live until
    it is counted and hold no cycles; every few hundred allocations the collector would
    walk all of them again, which was nearly half of the plan's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _sources(
    params: Params, inputs: StageInputs, project: Path, notes: list[str], stored: StoredPlan | None,
) -> Iterator[tuple[str, str, _MethodPrompts]]:
    """(stage, method, prompts) of every stage that sends the study's models requests:
    simulate, then new questions and Shapley (:mod:`valuesim.paid_stages`); from
    ``stored`` where it has them (their counts, and the notes they made)."""
    from valuesim.paid_stages import other_stage_prompts

    def simulate(method: str) -> Callable[[], tuple[list[Block], int]]:
        return lambda: stage_blocks(params, method, inputs)

    def other(stage: str, method: str) -> Callable[[], list[Prompt]]:
        def listed() -> list[Prompt]:
            for s, m, build in other_stage_prompts(params, inputs, project, []):
                if (s, m) == (stage, method):
                    return build()
            raise DataError(f"plan: no {stage} prompts for {method}")  # the stored plan is stale
        return listed

    if stored is not None and stored.sources is not None:
        notes += stored.notes
        for stage, method in stored.sources:
            counts = stored.methods.get(f"{stage}/{method}")
            if stage == "simulate":
                yield stage, method, _MethodPrompts(blocks=simulate(method), counts=counts)
            else:
                yield stage, method, _MethodPrompts(listed=other(stage, method), counts=counts)
        return
    sources: list[tuple[str, str]] = []
    for method in params.simulate.methods:
        sources.append(("simulate", method))
        yield "simulate", method, _MethodPrompts(blocks=simulate(method))
    before = len(notes)
    for stage, method, build in other_stage_prompts(params, inputs, project, notes):
        sources.append((stage, method))
        yield stage, method, _MethodPrompts(listed=build)
    if stored is not None:
        stored.sources, stored.notes = sources, notes[before:]


def plan_study(
    params: Params,
    inputs: StageInputs,
    *,
    project: Path = Path(),
    requests_per_s: float | None = None,
    count_tokens: bool = True,
    models: Sequence[str] | None = None,
    stored: StoredPlan | None = None,
) -> Plan:
    """The plan of every (model, method) of the study (or of ``models`` only).

    ``requests_per_s``: the throughput to assume where this project has seen none for
    a model. ``count_tokens``: load local models' tokenizers (off: local rows are
    estimated too; their cost is 0 either way). ``stored``: a plan kept from an earlier
    call with the same inputs (:mod:`valuesim.plan_cache`): its counts are used where
    they hold, and what is counted anew is added to it.
    """
    from valuesim.answer_tables import RUNS

    seen = observed_rates(project / RUNS)
    chosen = list(models) if models is not None else list(params.simulate.models)
    rows: list[PlanRow] = []
    notes = list(inputs.notes)
    with ExitStack() as stack:
        stack.enter_context(_collection_paused())
        engines = {m: plan_engine(params, m, project, stack) for m in chosen}
        tokenizers = {m: local_tokenizer(e) if count_tokens and _is_local(e) else None
                      for m, e in engines.items()}
        states = _cache_states(engines)
        for stage, method, prompts in _sources(params, inputs, project, notes, stored):
            key = f"{stage}/{method}"
            for model, engine in engines.items():
                held, fingerprint = states[model]
                # a tokenizer's counts are not stored (local models cost nothing)
                keep = stored is not None and tokenizers[model] is None
                send = stored.send(model, fingerprint, key) if keep else None  # type: ignore[union-attr]
                if send is None:
                    send = _send_counts(engine, prompts, tokenizers[model], held)
                    if keep:
                        stored.keep_send(model, fingerprint, key, send)  # type: ignore[union-attr]
                rate, source = _rate(seen, engine, requests_per_s)
                rows.append(_row(params, model, method, engine, prompts.counts, send, rate, source, stage))
            if stored is not None:
                stored.methods[key] = prompts.counts
    if any(r.tokens_counted == "estimate" for r in rows):
        notes.append(f"prompt tokens marked est: ~{CHARS_PER_TOKEN:g} characters a token of message "
                     "text (no chat template); tok: counted with the model's own tokenizer")
    if any(r.split_requests for r in rows):
        notes.append("splits: one more request per prefix answer (\"1\" of 1-10) for openai models "
                     "with options.server vllm/sglang/auto")
    if any(r.cost_usd for r in rows):
        notes.append("cost: simulate.prices, prompt tokens at the full input price and replies at "
                     "the most tokens the estimator asks for (an upper bound)")
    return Plan(rows, notes, inputs.countries, len(inputs.questions))


def usd(amount: float) -> str:
    """Dollars with cents, or four significant digits below a cent (a small test run)."""
    return f"${amount:,.2f}" if amount == 0 or amount >= 0.01 else f"${amount:.4g}"


def iter_table(plan: Plan) -> Iterator[str]:
    """The plan as aligned text lines (what ``valuesim plan`` prints)."""
    head = ("model", "method", "requests", "map", "cached", "to send", "prompt tokens",
            "splits", "cost USD", "time")
    body = []
    for r in plan.rows:
        tokens = f"{r.prompt_tokens:,} {'tok' if r.tokens_counted == 'tokenizer' else 'est'}"
        cost = "no price" if r.cost_usd is None else f"{r.cost_usd:,.2f}"
        method = r.method if r.stage == "simulate" else f"{r.method} ({r.stage})"
        body.append((r.model, method, f"{r.requests:,}", f"{r.map_requests:,}", f"{r.cached:,}",
                     f"{r.to_send:,}", tokens, f"{r.split_requests:,}", cost, duration(r.time_s)))
    t = plan.totals()
    unpriced = sorted({r.model for r in plan.rows if r.cost_usd is None})
    body.append(("total", "", f"{t['requests']:,}", "", f"{t['cached']:,}", f"{t['to_send']:,}",
                 f"{t['prompt_tokens']:,}", f"{t['split_requests']:,}",
                 f"{t['cost_usd']:,.2f}" + (" + ?" if unpriced else ""),
                 duration(t["time_s"])))
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    left = {0, 1}

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    yield fmt(head)
    for row in body[:-1]:
        yield fmt(row)
    yield "  ".join("-" * w for w in widths)
    yield fmt(body[-1])
    rates = {(r.model, r.rate, r.rate_source) for r in plan.rows}
    for model, rate, source in sorted(rates, key=lambda x: x[0]):
        shown = f"{rate:,.2f} requests/s" if rate else "unknown"
        yield f"time for {model}: {shown} ({source})"
    yield from (f"note: {n}" for n in plan.notes)
    if unpriced:
        yield (f"note: no price in simulate.prices for {', '.join(unpriced)}: not counted in the "
               "cost (free for your own servers; add a price for a paid API)")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def kept_study_plan(params: Params, project: Path, models: Sequence[str]) -> Plan:
    """:func:`plan_study` of ``models`` from the pipeline's outputs,
    with token estimates only, using and updating the plan kept under the cache dir."""
    from valuesim.plan_cache import cache_path, inputs_digest, load, save

    path = cache_path(params, project)
    key = inputs_digest(params, project)
    stored = load(path, key)
    before = json.dumps(stored.to_json(), sort_keys=True)
    plan = plan_study(params, outputs_inputs(params), project=project, count_tokens=False,
                      models=models, stored=stored)
    if json.dumps(stored.to_json(), sort_keys=True) != before:
        save(path, key, stored)
    return plan

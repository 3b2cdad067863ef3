"""`valuesim bench`: the engine's local scoring against a naive reference.

All three paths score the same requests (value personas of a few countries, every
kept target question) in one process:

- naive: fp32, one prompt per forward pass, full-vocabulary logits at every
  position, no prefix reuse, every answer token (and the end-of-turn token) scored
  by its own pass. Slow and obviously right: the reference.
- fp32: the engine (chunks, prefix KV reuse, answer tries, logits only where
  needed) with fp32 weights, the exact path.
- bf16: the same with bf16 weights.
- server-exact: the fp32 model served by a vLLM-wire-format fake
  (:mod:`valuesim.testing.fake_vllm`) and scored through the real ``openai`` SDK and
  the openai plugin's exact prefix mode (``server: vllm``, answers read by token id
  at a top-k cap of 20); its largest TV from the
  fp32 engine's ``answer_start`` distributions is ``server_exact_max_tv`` (None, with
  the reason in ``server_exact_skipped``, when the plugin is not installed).

It also scores the same requests with the fp32 model through the exact scorer's
path before issue 25 (batches filled by the token budget whatever their rows'
lengths, key/value heads copied per query head) and today's (batches split where
rows get >10% shorter, grouped-query attention inside SDPA), alternating, in the
same process: their CPU and wall-clock ratios, the largest TV between them
(``path_max_tv``, float reordering only), the share of forwarded row tokens that are
padding on each, and today's achieved GFLOP/s
(:func:`valuesim.llm.roofline.forward_flops` over its best wall-clock time) beside
the fp32 ``torch.mm`` peak measured in this run with the same threads
(``gemm_peak_gflops``).

It reports scorings per second, speed-ups, prompt tokens per second of the faster
path, the total-variation distance of each path from the reference, and what bf16
does to country-level means (mean answer over personas, per country and question)
compared with fp32 and to their error against the population's own means.

It benchmarks the whole path from the study's inputs (population, descriptors,
personas, prompts) to the engine, so it lives at the package top level rather than
in ``valuesim.llm``; it talks to the local provider only through its public
attributes (``lm``, ``clear_prefix_cache``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from valuesim import paths
from valuesim.errors import ConfigError, DataError
from valuesim.llm.types import AnswerDistribution, ChatMessage, Decoding, ScoreRequest

if TYPE_CHECKING:
    from valuesim.config import Params
    from valuesim.llm.engine import Engine
    from valuesim.llm.local_model import LoadedModel
    from valuesim.llm.transformers_provider import TransformersProvider
    from valuesim.prompts import PromptUnit
    from valuesim.survey.bank import QuestionBank


@dataclass
class BenchResult:
    naive_per_s: float | None
    fp32_per_s: float
    fp32_speedup: float | None
    fp32_max_tv: float | None
    bf16_per_s: float
    bf16_speedup: float | None
    bf16_max_tv: float | None
    bf16_mean_tv: float | None
    tokens_per_s: float
    # context
    requests: int
    countries: list[str]
    personas_per_country: int
    questions: int
    prompt_tokens: int
    threads: int
    native_bf16: bool | None  # AMX or AVX512-BF16 on this CPU (None: torch cannot tell)
    naive_requests: int  # requests the reference (and the speed-up timing) ran on
    naive_s: float | None
    naive_fp32_s: float | None  # the engine paths on the reference's requests
    naive_bf16_s: float | None
    fp32_s: float
    bf16_s: float
    fp32_mean_tv: float | None
    bf16_vs_fp32_max_tv: float
    bf16_vs_fp32_mean_tv: float
    # country means (expected answer averaged over personas), |bf16 - fp32| / scale range
    country_mean_diff_mean: float
    country_mean_diff_max: float
    # mean absolute error of country means against the population's own means (/ range)
    mae_fp32: float | None
    mae_bf16: float | None
    notes: list[str] = field(default_factory=list)
    # the exact prefix path over the wire (fake vLLM + openai SDK + plugin) vs fp32
    server_exact_max_tv: float | None = None
    server_exact_requests: int = 0  # chat requests it sent (continuations included)
    server_exact_skipped: str | None = None  # why it did not run
    # the exact scorer's path before issue 25 vs today's, fp32, same requests, alternating
    padding_share: float = 0.0  # padded row tokens / forwarded row tokens, today's path
    padding_share_before: float = 0.0  # the same, batches filled by the token budget alone
    gflops: float = 0.0  # achieved: forward_flops of today's path / its best wall-clock time
    gemm_peak_gflops: float = 0.0  # fp32 torch.mm, same threads, best of one try per round
    roofline_share: float = 0.0  # gflops / gemm_peak_gflops
    path_before_s: float = 0.0  # best wall-clock time of each path over the rounds
    path_after_s: float = 0.0
    path_cpu_ratio: float = 0.0  # CPU seconds before / after (best rounds)
    path_wall_ratio: float = 0.0  # wall-clock seconds before / after (best rounds)
    path_max_tv: float = 0.0  # largest TV between the two paths' distributions
    path_rounds: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def reference_subset(n: int, k: int) -> list[int]:
    """``k`` evenly spaced request indices (all of them when ``k`` is 0 or >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({round(x) for x in np.linspace(0, n - 1, k)})


# -- the requests -------------------------------------------------------------


def _respondents(params: Params, bank: QuestionBank, countries: Sequence[str]) -> pl.DataFrame:
    """The extracted population when there is one, else the demo (or real) source."""
    if paths.RESPONDENTS.exists():
        frame = pl.read_parquet(paths.RESPONDENTS)
    elif params.data.is_demo:
        from valuesim.survey.demo.population import generate

        frame = generate(
            params.data.source, bank, params.data.demo_respondents_per_country,
            params.personas.seed, countries,
        )
    else:
        from valuesim.survey.readers import read_source

        frame = read_source(params.data.source, bank).respondents
    have = set(frame["country"].unique().to_list())
    missing = [c for c in countries if c not in have]
    if missing:
        raise ConfigError(
            f"bench countries {', '.join(missing)} are not in the population; "
            f"choose from {', '.join(sorted(have))}"
        )
    return frame.filter(pl.col("country").is_in(list(countries)))


def default_countries(params: Params, n: int = 2) -> list[str]:
    if paths.SELECTED_COUNTRIES.exists():
        chosen = json.loads(paths.SELECTED_COUNTRIES.read_text())["countries"]
    elif isinstance(params.countries.select, list):
        chosen = params.countries.select
    else:
        raise ConfigError("countries.select is 'hull' and the map stage has not run; pass --countries")
    return list(chosen[:n])


def default_questions(bank: QuestionBank) -> list[str]:
    """The kept target questions (all targets before the human stage has run)."""
    targets = [i.id for i in bank.targets]
    if paths.KEPT_QUESTIONS.exists():
        kept = set(json.loads(paths.KEPT_QUESTIONS.read_text())["kept"])
        return [q for q in targets if q in kept]
    return targets


def bench_units(
    params: Params, countries: Sequence[str], n_personas: int, questions: Sequence[str] | None
) -> tuple[list[PromptUnit], QuestionBank, pl.DataFrame]:
    """Value-method prompts for ``n_personas`` personas per country, and the population."""
    from valuesim.personas import descriptors
    from valuesim.personas.build import build_personas
    from valuesim.personas.sampling import sample_respondents
    from valuesim.prompts import plan_prompts
    from valuesim.survey.bank import load_bank

    bank = load_bank(params.data.questions)
    qids = list(questions) if questions else default_questions(bank)
    respondents = _respondents(params, bank, countries)
    value_path = (
        paths.GENERATED_DESCRIPTORS if paths.GENERATED_DESCRIPTORS.exists() else Path(params.descriptors.path)
    )
    value_set = descriptors.load(value_path, bank, kind="value")
    socio_set = descriptors.load(params.descriptors.sociodemographic_path, bank, kind="sociodemographic")
    sample = sample_respondents(respondents, countries, n_personas, params.personas.seed)
    personas = build_personas(sample, bank, value_set, socio_set, kinds=("value",), nationality=(True,))
    units = plan_prompts("value", personas, bank, qids, countries, params.prompts.guidance)
    return units, bank, respondents


# -- the naive reference ------------------------------------------------------


def naive_score(lm: LoadedModel, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
    """One full forward pass (all positions, whole vocabulary) per answer token, under
    each request's answer rule, worked out here from the token sequences (not from
    the engine's trie)."""
    import torch

    from valuesim.llm.exact_scoring import _ids, _render, answer_trie, digit_tokens
    from valuesim.llm.types import Usage

    def next_logp(ids: list[int]) -> torch.Tensor:
        t = torch.tensor([ids], device=lm.device)
        logits = lm.model(input_ids=t, use_cache=False).logits[0].float()
        return torch.log_softmax(logits[-1], dim=-1)

    out = []
    with torch.inference_mode():
        for req in requests:
            rule = req.decoding.answer_rule or "answer_start"
            prompt = _ids(lm.tokenizer, _render(lm.tokenizer, req.messages, generation_prompt=True))
            with_end = answer_trie(lm, req.messages, req.answers, "answer_eot").sequences
            bodies = [list(seq[:-1]) for seq in with_end]
            first = next_logp(prompt)
            logps = []
            for answer, body, seq in zip(req.answers, bodies, with_end, strict=True):
                if rule == "first_token":
                    logps.append(float(first[body[0]]))
                    continue
                tokens = list(seq) if rule == "answer_eot" else body
                total = sum(float(next_logp(prompt + tokens[:k])[tokens[k]]) for k in range(len(tokens)))
                if rule in ("answer_start", "leading_integer"):
                    extend = {o[len(body)] for o in bodies if len(o) > len(body) and o[: len(body)] == body}
                    last = answer.strip()[-1:]
                    if rule == "leading_integer" and last.isascii() and last.isdigit():
                        extend |= digit_tokens(lm.tokenizer)
                    if extend:
                        after = next_logp(prompt + body)
                        total += float(np.log1p(-float(torch.exp(after[sorted(extend)]).sum())))
                logps.append(total)
            lp = np.array(logps)
            if rule == "first_token":
                coverage = float(sum(np.exp(float(first[t])) for t in {b[0] for b in bodies}))
            else:
                coverage = float(np.exp(lp).sum())
            probs = np.exp(lp - lp.max()) / np.exp(lp - lp.max()).sum()
            out.append(
                AnswerDistribution(
                    probs=tuple(float(x) for x in probs), coverage=coverage, estimator="logprobs",
                    usage=Usage(prompt_tokens=len(prompt)), answer_rule=rule,
                )
            )
    return out


# -- the measurements ---------------------------------------------------------


def _timed(fn: Callable[[], list[AnswerDistribution]]) -> tuple[list[AnswerDistribution], float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _warmup_request(unit: PromptUnit) -> tuple[tuple[ChatMessage, ...], tuple[str, ...]]:
    # A different system message, so the warm-up does not pre-fill the prefix cache.
    return (ChatMessage("system", "Warm-up."), unit.messages[-1]), unit.answers


def _engine(params: Params, model: str, precision: str) -> Engine:
    from valuesim.llm.engine import Engine

    spec = params.models[model].model_copy(update={"precision": precision})
    return Engine(
        spec.provider, spec, None, batch_size=params.simulate.batch_size, progress=False,
        log=lambda _msg: None,
    )


def _local(engine: Engine) -> TransformersProvider:
    """The engine's provider as the local model it must be here (run_bench checks the
    spec's provider name; this makes the type say so too)."""
    from valuesim.llm.transformers_provider import TransformersProvider

    provider = engine.provider
    if not isinstance(provider, TransformersProvider):
        raise ConfigError(f"bench measures the local transformers provider, not {provider.name!r}")
    return provider


def country_means(
    units: Sequence[PromptUnit], dists: Sequence[AnswerDistribution]
) -> dict[tuple[str, str], float]:
    """Expected answer (codes are the answers) averaged over personas, per country/question."""
    acc: dict[tuple[str, str], list[float]] = {}
    for u, d in zip(units, dists, strict=True):
        codes = np.array([float(a) for a in u.answers])
        acc.setdefault((u.country, u.question), []).append(float(codes @ np.array(d.probs)))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def population_means(respondents: pl.DataFrame, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Weighted mean of substantive answers per (country, question) in the population."""
    out = {}
    for country, q in keys:
        rows = respondents.filter((pl.col("country") == country) & pl.col(q).is_not_null())
        if rows.height:
            w = rows["weight"].to_numpy()
            out[(country, q)] = float(np.average(rows[q].to_numpy().astype(float), weights=w))
    return out


def run_bench(
    params: Params,
    *,
    model: str = "smollm2",
    countries: Sequence[str] | None = None,
    n_personas: int = 1,
    questions: Sequence[str] | None = None,
    naive: bool = True,
    naive_requests: int = 4,
    server_exact: bool = True,
    log: Callable[[str], None] = print,
) -> BenchResult:
    from valuesim.llm.local_model import cpu_has_native_bf16, set_threads

    if model not in params.models:
        raise ConfigError(f"model {model!r} is not defined under models in params.yaml")
    if params.models[model].provider != "transformers":
        raise ConfigError(f"bench measures the local transformers provider; {model!r} is not one")
    chosen = list(countries) if countries else default_countries(params)
    units, bank, respondents = bench_units(params, chosen, n_personas, questions)
    if not units:
        raise DataError("no prompts to benchmark; check --countries, --personas and --questions")
    log(f"bench: {len(units)} requests ({len(chosen)} countries x {n_personas} personas x "
        f"{len({u.question for u in units})} questions), value method")

    fp32 = _engine(params, model, "fp32")
    bf16 = _engine(params, model, "bf16")
    reqs = [fp32.request(u.messages, u.answers) for u in units]
    warm = fp32.request(*_warmup_request(units[0]))
    for eng in (fp32, bf16):
        eng.run([warm])  # loads the model and pays one-time costs outside the timing
    set_threads(None)
    import torch

    threads = torch.get_num_threads()

    log("bench: fp32 engine ...")
    res32, t32 = _timed(lambda: fp32.run(reqs))
    log("bench: the exact scorer before issue 25 vs today's (fp32, alternating) ...")
    paths_cmp = compare_paths(_local(fp32), reqs)
    log("bench: bf16 engine ...")
    res16, t16 = _timed(lambda: bf16.run(reqs))
    n = len(reqs)
    tv = lambda a, b: np.array([total_variation(x.probs, y.probs) for x, y in zip(a, b, strict=True)])  # noqa: E731
    tv32 = tv16 = None
    tn = sub_t32 = sub_t16 = None
    sub = reference_subset(n, naive_requests)
    if naive:
        # The reference is ~30 s a request here, so by default it runs on an evenly
        # spaced subset; the engine paths are timed again on exactly that subset
        # (with cold prefix caches) so that the speed-ups compare the same requests.
        log(f"bench: naive reference on {len(sub)} of the {n} requests (slow) ...")
        lm = _local(fp32).lm
        sub_reqs = [reqs[i] for i in sub]
        ref, tn = _timed(lambda: naive_score(lm, sub_reqs))
        for eng in (fp32, bf16):
            _local(eng).clear_prefix_cache()
        _, sub_t32 = _timed(lambda: fp32.run(sub_reqs))
        _, sub_t16 = _timed(lambda: bf16.run(sub_reqs))
        tv32 = tv([res32[i] for i in sub], ref)
        tv16 = tv([res16[i] for i in sub], ref)

    server_tv, server_sent, server_skipped = None, 0, "not asked for (--no-server-exact)"
    if server_exact:
        log("bench: server-exact path (fake vLLM + openai SDK + plugin) ...")
        start = [replace(r, decoding=Decoding(answer_rule="answer_start")) for r in reqs]
        ref_start = res32 if fp32.answer_rule == "answer_start" else _local(fp32).score(start)
        server_tv, server_sent, server_skipped = server_exact_tv(_local(fp32).lm, start, ref_start)

    tokens = sum(r.usage.prompt_tokens for r in res32)
    tv16_32 = tv(res16, res32)
    m32, m16 = country_means(units, res32), country_means(units, res16)
    ranges = {q: bank.item(q).range for _, q in m32}
    diffs = np.array([abs(m16[k] - m32[k]) / ranges[k[1]] for k in m32])
    human = population_means(respondents, list(m32))
    mae = lambda m: float(np.mean([abs(m[k] - human[k]) / ranges[k[1]] for k in human]))  # noqa: E731
    faster = min(t32, t16)
    return BenchResult(
        naive_per_s=len(sub) / tn if tn else None,
        fp32_per_s=n / t32,
        fp32_speedup=tn / sub_t32 if tn and sub_t32 else None,
        fp32_max_tv=float(tv32.max()) if tv32 is not None else None,
        bf16_per_s=n / t16,
        bf16_speedup=tn / sub_t16 if tn and sub_t16 else None,
        bf16_max_tv=float(tv16.max()) if tv16 is not None else None,
        bf16_mean_tv=float(tv16.mean()) if tv16 is not None else None,
        tokens_per_s=tokens / faster,
        requests=n,
        countries=chosen,
        personas_per_country=n_personas,
        questions=len({u.question for u in units}),
        prompt_tokens=tokens,
        threads=threads,
        native_bf16=cpu_has_native_bf16(),
        naive_requests=len(sub) if naive else 0,
        naive_s=tn,
        naive_fp32_s=sub_t32,
        naive_bf16_s=sub_t16,
        fp32_s=t32,
        bf16_s=t16,
        fp32_mean_tv=float(tv32.mean()) if tv32 is not None else None,
        bf16_vs_fp32_max_tv=float(tv16_32.max()),
        bf16_vs_fp32_mean_tv=float(tv16_32.mean()),
        country_mean_diff_mean=float(diffs.mean()),
        country_mean_diff_max=float(diffs.max()),
        mae_fp32=mae(m32) if human else None,
        mae_bf16=mae(m16) if human else None,
        notes=([] if naive else ["naive reference skipped: speed-ups and TV vs reference are null"])
        + ([f"server-exact path skipped: {server_skipped}"] if server_skipped else []),
        server_exact_max_tv=server_tv,
        server_exact_requests=server_sent,
        server_exact_skipped=server_skipped,
        padding_share=paths_cmp.padding_share,
        padding_share_before=paths_cmp.padding_share_before,
        gflops=paths_cmp.gflops,
        gemm_peak_gflops=paths_cmp.gemm_peak_gflops,
        roofline_share=paths_cmp.gflops / paths_cmp.gemm_peak_gflops,
        path_before_s=paths_cmp.before_s,
        path_after_s=paths_cmp.after_s,
        path_cpu_ratio=paths_cmp.cpu_ratio,
        path_wall_ratio=paths_cmp.wall_ratio,
        path_max_tv=paths_cmp.max_tv,
        path_rounds=paths_cmp.rounds,
    )


@dataclass
class PathComparison:
    """The exact scorer before issue 25 against today's, on the same requests."""

    before_s: float
    after_s: float
    cpu_ratio: float
    wall_ratio: float
    max_tv: float
    padding_share: float
    padding_share_before: float
    gflops: float
    gemm_peak_gflops: float
    rounds: int


#: the exact scorer's settings before issue 25 (see score_requests)
BEFORE_ISSUE_25: dict[str, Any] = {"split_shorter": None, "grouped_attention": False}


def compare_paths(
    provider: TransformersProvider, requests: Sequence[ScoreRequest], rounds: int = 3
) -> PathComparison:
    """Score ``requests`` with the path before issue 25 and today's, alternating for
    ``rounds`` rounds, each with a cold prefix cache; the best round of each counts
    (the machine may be shared: the best round is the least disturbed). The
    ``torch.mm`` peak is measured at the start of every round, the best counting, so
    a busy moment does not pass for the machine's peak."""
    from valuesim.llm.exact_scoring import ForwardStats, PrefixCache, score_requests
    from valuesim.llm.roofline import forward_flops, gemm_peak_gflops

    settings = {"before": BEFORE_ISSUE_25, "after": {}}
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    out: dict[str, list[AnswerDistribution]] = {}
    stats: dict[str, ForwardStats] = {}
    peak = 0.0
    for _ in range(rounds):
        peak = max(peak, gemm_peak_gflops())
        for name, kw in settings.items():
            st = ForwardStats()
            c0, w0 = time.process_time(), time.perf_counter()
            out[name] = score_requests(
                provider.lm, requests, prefix_cache=PrefixCache(),
                max_batch_tokens=provider.max_batch_tokens, stats=st, **kw,
            )
            c, w = time.process_time() - c0, time.perf_counter() - w0
            cpu[name] = min(cpu.get(name, c), c)
            wall[name] = min(wall.get(name, w), w)
            stats[name] = st
    tvs = [total_variation(a.probs, b.probs) for a, b in zip(out["before"], out["after"], strict=True)]
    return PathComparison(
        before_s=wall["before"],
        after_s=wall["after"],
        cpu_ratio=cpu["before"] / cpu["after"],
        wall_ratio=wall["before"] / wall["after"],
        max_tv=max(tvs),
        padding_share=stats["after"].padding_share,
        padding_share_before=stats["before"].padding_share,
        gflops=forward_flops(provider.lm, stats["after"]) / wall["after"] / 1e9,
        gemm_peak_gflops=peak,
        rounds=rounds,
    )


#: the fake's --max-logprobs, vLLM's default: the server-exact path reads the answers'
#: tokens by id (logprob_token_ids), so no wider top-k is needed
SERVER_EXACT_WIDTH = 20


def server_exact_tv(
    lm: LoadedModel, requests: Sequence[ScoreRequest], exact: Sequence[AnswerDistribution]
) -> tuple[float | None, int, str | None]:
    """(max TV from ``exact``, requests sent, why skipped) for the server-exact path.

    ``lm`` is served by a loopback fake of vLLM's chat-completions API with real
    log-probabilities; the openai plugin scores ``requests`` through it with
    ``options.server: vllm``. ``exact`` are the local provider's ``answer_start``
    distributions of the same requests.
    """
    import importlib.util

    from valuesim.config import ModelSpec
    from valuesim.llm.engine import Engine
    from valuesim.plugins import providers
    from valuesim.testing.fake_vllm import serve_fake_vllm

    if "openai" not in providers() or importlib.util.find_spec("openai") is None:
        return None, 0, "the openai plugin is not installed (pip install -e plugins/valuesim-openai)"
    with serve_fake_vllm(lm, max_logprobs=SERVER_EXACT_WIDTH) as (url, fake):
        spec = ModelSpec(
            provider="openai", model=fake.model_name, base_url=url, concurrency=1,
            options={"server": "vllm", "max_top_logprobs": SERVER_EXACT_WIDTH},
        )
        with Engine("openai", spec, progress=False, log=lambda _msg: None) as engine:
            got = engine.run([engine.request(r.messages, r.answers) for r in requests])
        sent = len(fake.bodies)
    tvs = [total_variation(a.probs, b.probs) for a, b in zip(got, exact, strict=True)]
    return max(tvs), sent, None


def _yes_no(x: bool | None) -> str:
    return "unknown" if x is None else ("yes" if x else "no")


def format_result(r: BenchResult) -> str:
    def f(x: Any, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    lines = [
        f"requests: {r.requests} ({', '.join(r.countries)}; {r.personas_per_country} personas; "
        f"{r.questions} questions), {r.prompt_tokens} prompt tokens, {r.threads} threads, "
        f"native bf16 (AMX/AVX512-BF16): {_yes_no(r.native_bf16)}",
        f"naive reference on {r.naive_requests} of them; speed-ups and TV on those "
        f"(engine there: fp32 {f(r.naive_fp32_s, '.1f')} s, bf16 {f(r.naive_bf16_s, '.1f')} s)",
        f"{'path':<8}{'scorings/s':>12}{'seconds':>10}{'speed-up':>10}{'max TV':>11}{'mean TV':>11}",
        f"{'naive':<8}{f(r.naive_per_s, '.2f'):>12}{f(r.naive_s, '.1f'):>10}{'1.0':>10}{'-':>11}{'-':>11}",
        f"{'fp32':<8}{r.fp32_per_s:>12.2f}{r.fp32_s:>10.1f}{f(r.fp32_speedup, '.1f'):>10}"
        f"{f(r.fp32_max_tv, '.2e'):>11}{f(r.fp32_mean_tv, '.2e'):>11}",
        f"{'bf16':<8}{r.bf16_per_s:>12.2f}{r.bf16_s:>10.1f}{f(r.bf16_speedup, '.1f'):>10}"
        f"{f(r.bf16_max_tv, '.2e'):>11}{f(r.bf16_mean_tv, '.2e'):>11}",
        f"prompt tokens/s (faster path): {r.tokens_per_s:.0f}",
        f"bf16 vs fp32: TV max {r.bf16_vs_fp32_max_tv:.4f}, mean {r.bf16_vs_fp32_mean_tv:.4f}; "
        f"country means |bf16-fp32|/range mean {r.country_mean_diff_mean:.4f}, "
        f"max {r.country_mean_diff_max:.4f}",
        f"country-mean MAE vs population (/range): fp32 {f(r.mae_fp32, '.4f')}, "
        f"bf16 {f(r.mae_bf16, '.4f')}",
        f"server-exact (fake vLLM, openai plugin, server: vllm) vs fp32: max TV "
        f"{f(r.server_exact_max_tv, '.2e')} over {r.requests} scorings, {r.server_exact_requests} "
        "chat requests",
        f"exact scorer, before issue 25 -> today (fp32, best of {r.path_rounds} alternating rounds): "
        f"{r.path_before_s:.2f} s -> {r.path_after_s:.2f} s, {r.path_cpu_ratio:.2f}x less CPU, "
        f"{r.path_wall_ratio:.2f}x wall-clock; max TV between them {r.path_max_tv:.2e}",
        f"padding: {r.padding_share:.1%} of forwarded row tokens (before: {r.padding_share_before:.1%}); "
        f"achieved {r.gflops:.1f} GFLOP/s, {r.roofline_share:.0%} of the fp32 torch.mm peak "
        f"({r.gemm_peak_gflops:.1f} GFLOP/s, {r.threads} threads)",
        *r.notes,
    ]
    return "\n".join(lines)

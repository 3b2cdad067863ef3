"""Exact prefix scoring over the wire (``options.server: vllm``) equals local scoring.

A vLLM-wire-format fake (:mod:`valuesim.testing.fake_vllm`) serves the embedded
SmolLM2's own logits, extension fields (``continue_final_message``) included. The
real ``openai`` SDK and the plugin, through valuesim's engine, score real valuesim
prompts of EVERY target question of ``data/questions/wvs7.yaml`` (2- to 10-point)
for one value persona; the local transformers provider scores the same messages
under ``answer_start``. They must agree to TV <= 1e-3 on every one, 10-point items
included, at vLLM's default top-k cap of 20: server mode reads the answers' tokens by
id (``logprob_token_ids``), so no answer is floored. A vLLM without that field (it
drops it, or a proxy refuses it) is read from the top-k instead, said in one line;
at k = 20 that floors digits SmolLM2 rarely says first, by more than 1e-3. The plain ``top_logprobs`` path on the same server is checked against
what the README says of it (TV within ``top_k_tv_bound``, not 0 on 10-point items).
The faults: a plain OpenAI server (400 on the extension fields) and a server that
ignores them (answers a fresh turn) stop the run in one line, or fall back to the
top-k estimate when ``fallback_top_logprobs`` allows it.

Slow: loads the embedded model and runs about a minute of CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from valuesim import prompts
from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.answer_estimates import prefix_answers, top_k_tv_bound
from valuesim.llm.engine import Engine
from valuesim.llm.types import AnswerDistribution, ChatMessage, Decoding, ScoreRequest
from valuesim.personas import descriptors
from valuesim.personas.build import persona_text
from valuesim.plugins import providers
from valuesim.survey.bank import load_bank
from valuesim.testing.fake_vllm import serve_fake_vllm

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
PERSONA = {"country": "JPN", "Q164": 1, "Y003": 2, "Q184": 8, "Q254": 2, "Q45": 3, "Y002": 3,
           "Q182": 9, "Q209": 1, "Q57": 1, "Q46": 2}
MATCH_TV = 1e-3
ROUNDING = 1e-4
# vLLM's --max-logprobs on the fake (its default), and the width asked for: reading
# by token id needs no wider top-k
WIDTH = 20
# The top-k path (SGLang, an older vLLM) needs ~1,000: SmolLM2 puts some of a 10-point
# scale's digits below its 200th most likely first token on these prompts, where its
# answers' coverage is small, so their floors would show at 1e-3
TOP_K_WIDTH = 1000


def valuesim_prompts() -> list[tuple[str, tuple[ChatMessage, ...], tuple[str, ...]]]:
    """(item id, messages, answers) for every target question, as simulate renders them."""
    bank = load_bank(ROOT / "data" / "questions" / "wvs7.yaml")
    value_set = descriptors.load(ROOT / "data" / "descriptors" / "value_handwritten.yaml", bank, kind="value")
    socio_set = descriptors.load(
        ROOT / "data" / "descriptors" / "sociodemographic.yaml", bank, kind="sociodemographic"
    )
    text, missing = persona_text(PERSONA, "value", True, bank, value_set, socio_set)
    assert not missing
    return [
        (item.id, prompts.render("value", item, country="JPN", persona=text), prompts.answer_strings(item))
        for item in bank.targets
    ]


def _tv(a: AnswerDistribution, b: AnswerDistribution) -> float:
    return 0.5 * sum(abs(x - y) for x, y in zip(a.probs, b.probs, strict=True))


@dataclass
class Scored:
    todo: list[tuple[str, tuple[ChatMessage, ...], tuple[str, ...]]]
    exact: list[AnswerDistribution]  # server mode
    plain: list[AnswerDistribution]  # top_logprobs, 10-point items only
    local: list[AnswerDistribution]  # transformers, answer_start
    bodies: list[dict[str, Any]]
    summary: Any
    tokenized: int  # POST /tokenize calls


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = ModelSpec(provider="transformers", model="embedded", precision="fp32")
    return providers()["transformers"].create(spec, state_dir=tmp_path_factory.mktemp("state"))


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")  # loopback only; never a real key


def _engine(url: str, **options: Any) -> Engine:
    spec = ModelSpec(provider="openai", model="smollm2-served", base_url=url, concurrency=1,
                     options=options)
    return Engine("openai", spec, progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def scored(local: Any) -> Scored:
    todo = valuesim_prompts()
    ten = [(i, m, a) for i, m, a in todo if len(a) == 10]
    with pytest.MonkeyPatch.context() as mp, serve_fake_vllm(local.lm, max_logprobs=WIDTH) as (url, fake):
        mp.setenv("OPENAI_API_KEY", "sk-local-test")
        with _engine(url, server="vllm", max_top_logprobs=WIDTH) as engine:
            assert engine.estimator == "logprobs"
            assert engine.answer_rule == "answer_start"
            exact = engine.run([engine.request(m, a) for _, m, a in todo])
            summary = engine.summary
        bodies = list(fake.bodies)
        tokenized = len(fake.tokenized)
        with _engine(url) as engine:  # the plain top-k path, k = 20
            assert engine.estimator == "top_logprobs"
            plain = engine.run([engine.request(m, a) for _, m, a in ten])
    ref = local.score([ScoreRequest(m, a, Decoding(answer_rule="answer_start")) for _, m, a in todo])
    return Scored(todo, exact, plain, ref, bodies, summary, tokenized)


def _report(s: Scored, rows: Sequence[int]) -> str:
    return "\n".join(
        f"{s.todo[i][0]:6s} {len(s.todo[i][2]):2d}-point TV={_tv(s.exact[i], s.local[i]):.2e} "
        f"floored={','.join(s.exact[i].floored) or '-'} coverage={s.exact[i].coverage:.4f}/"
        f"{s.local[i].coverage:.4f}"
        for i in rows
    )


def test_every_target_question_matches_local_answer_start(scored: Scored) -> None:
    s = scored
    assert len(s.todo) == 35
    assert {len(a) for _, _, a in s.todo} >= {4, 10}
    tvs = [_tv(e, r) for e, r in zip(s.exact, s.local, strict=True)]
    bad = [i for i, tv in enumerate(tvs) if tv > MATCH_TV]
    assert not bad, _report(s, bad)
    for e, r in zip(s.exact, s.local, strict=True):
        assert (e.estimator, e.answer_rule, e.flag) == ("logprobs", "answer_start", "")
        assert e.coverage == pytest.approx(r.coverage, abs=MATCH_TV)
        # floored only what the model all but never says first (below its top WIDTH)
        for a, p in zip(s.todo[s.exact.index(e)][2], r.probs, strict=True):
            assert a not in e.floored or p < MATCH_TV
    ten = [i for i, (_, _, a) in enumerate(s.todo) if len(a) == 10]
    assert ten
    assert all(s.exact[i].probs[9] > 0 for i in ten)
    print(f"\nserver-exact vs local over {len(tvs)} target questions: max TV {max(tvs):.2e}; "
          f"10-point: max TV {max(tvs[i] for i in ten):.2e}; items with floors (below the top "
          f"{WIDTH}): {sum(bool(e.floored) for e in s.exact)}")


def test_one_continuation_per_prefix_answer_through_the_extension_fields(scored: Scored) -> None:
    s = scored
    cont = [b for b in s.bodies if b["messages"][-1]["role"] == "assistant"]
    first = [b for b in s.bodies if b["messages"][-1]["role"] != "assistant"]
    assert len(first) == len(s.todo)
    # a 10-point item has one prefix answer ("1"); the others none
    expected = sum(len(prefix_answers(a)) for _, _, a in s.todo)
    assert 0 < len(cont) <= expected
    for b in cont:
        assert (b["continue_final_message"], b["add_generation_prompt"]) == (True, False)
        assert b["messages"][-1]["content"].strip() == "1"
        # the digit that continues "1" into "10", by id; no top-k
        assert (b["max_tokens"], b["logprobs"], b["return_tokens_as_token_ids"]) == (1, True, True)
        assert "top_logprobs" not in b
        assert len(b["logprob_token_ids"]) == 1
    for b, (_, _, answers) in zip(first, s.todo, strict=True):
        assert "top_logprobs" not in b
        # SmolLM2 spells each digit as a token: one id per distinct first digit ("1" of "10" once)
        assert len(b["logprob_token_ids"]) == len({a[0] for a in answers})
    # the answers' tokens are asked once per answer text (and one prompt each time), not per question
    texts = {a for _, _, answers in s.todo for a in answers}
    assert len(texts) < s.tokenized <= 2 * len(texts)
    print(f"\n{len(s.bodies)} chat requests, {s.tokenized} /tokenize calls for {len(texts)} answer texts")
    # usage counts every request, the continuations included: one completion token each
    assert sum(d.usage.completion_tokens for d in s.exact) == len(s.bodies)
    assert s.summary.prompt_tokens == sum(d.usage.prompt_tokens for d in s.exact)


def test_plain_top_logprobs_error_on_ten_point_items_is_what_the_readme_says(scored: Scored) -> None:
    s = scored
    ten = [i for i, (_, _, a) in enumerate(s.todo) if len(a) == 10]
    tvs, bounds = [], []
    for j, i in enumerate(ten):
        est, ref = s.plain[j], s.local[i]
        assert est.estimator == "top_logprobs"
        tv, bound = _tv(est, ref), top_k_tv_bound(est, ref, s.todo[i][2])
        assert tv <= bound + ROUNDING, (s.todo[i][0], tv, bound)
        tvs.append(tv)
        bounds.append(bound)
    # the README: the top-k estimate differs from answer_start on 10-point items by mass
    # it never shows (bound > 0), by far more than the exact path does
    assert all(b > 0 for b in bounds)
    exact_max = max(_tv(s.exact[i], s.local[i]) for i in ten)
    assert max(tvs) > 10 * max(exact_max, MATCH_TV)
    seen = [j for j in range(len(ten)) if "10" not in s.plain[j].floored]  # the split observed

    def span(xs: Sequence[float]) -> str:
        return f"{min(xs):.3f}-{max(xs):.3f}" if xs else "-"

    print(f"\nplain top_logprobs on {len(ten)} 10-point items: TV {span(tvs)} (bound {span(bounds)}); "
          f"split observed on {len(seen)}: TV {span([tvs[j] for j in seen])} (bound "
          f"{span([bounds[j] for j in seen])}), not observed: TV "
          f"{span([tvs[j] for j in range(len(ten)) if j not in seen])} (bound "
          f"{span([bounds[j] for j in range(len(ten)) if j not in seen])}); "
          f"server-exact max TV {exact_max:.1e}")


@pytest.mark.parametrize("flavor", ["sglang", "vllm"])
def test_server_auto_finds_the_server_and_gives_the_same_distributions(
    local: Any, scored: Scored, key: None, flavor: str
) -> None:
    rows = [i for i, (_, _, a) in enumerate(scored.todo) if len(a) == 10][:2]
    with serve_fake_vllm(local.lm, flavor=flavor, max_logprobs=TOP_K_WIDTH) as (url, fake), \
            _engine(url, server="auto", max_top_logprobs=TOP_K_WIDTH) as engine:
        got = engine.run([engine.request(scored.todo[i][1], scored.todo[i][2]) for i in rows])
    cont = [b for b in fake.bodies if b["messages"][-1]["role"] == "assistant"]
    assert cont
    # SGLang has no add_generation_prompt field: only vLLM is sent it
    assert all(b["continue_final_message"] is True for b in cont)
    assert all(("add_generation_prompt" in b) == (flavor == "vllm") for b in cont)
    # only vLLM is asked for token ids; SGLang is read from the top-k
    assert all(("logprob_token_ids" in b) == (flavor == "vllm") for b in fake.bodies)
    for g, i in zip(got, rows, strict=True):
        assert _tv(g, scored.local[i]) <= MATCH_TV


@pytest.mark.parametrize("old", ["ignored", "rejected", "option off"])
def test_without_token_ids_the_top_k_is_read_and_floors_at_k_20(
    local: Any, scored: Scored, key: None, capsys: pytest.CaptureFixture[str], old: str
) -> None:
    # An older vLLM drops logprob_token_ids unread, a strict proxy refuses it (400),
    # options.logprob_token_ids: false does not ask: all read the top-k, as before
    # this field. At vLLM's default k = 20 that path misses digits SmolLM2 rarely says
    # first (TV > 1e-3), which the token-id path (scored.exact) reads exactly.
    rows = [i for i, (_, _, a) in enumerate(scored.todo) if len(a) == 10]
    options: dict[str, Any] = {"logprob_token_ids": False} if old == "option off" else {}
    token_ids = "honoured" if old == "option off" else old
    with serve_fake_vllm(local.lm, max_logprobs=WIDTH, token_ids=token_ids) as (url, fake), \
            _engine(url, server="vllm", max_top_logprobs=WIDTH, **options) as engine:
        got = engine.run([engine.request(scored.todo[i][1], scored.todo[i][2]) for i in rows])
    assert all(d.estimator == "logprobs" for d in got)  # still server mode, top-k read
    top_k_tv = [_tv(g, scored.local[i]) for g, i in zip(got, rows, strict=True)]
    by_id_tv = [_tv(scored.exact[i], scored.local[i]) for i in rows]
    assert max(by_id_tv) <= MATCH_TV < max(top_k_tv)
    assert any(g.floored for g in got)
    asked = [b for b in fake.bodies if "logprob_token_ids" in b]
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "by token id" in ln]
    if old == "option off":
        assert asked == []
        assert lines == []
    else:
        assert len(asked) == (1 if old == "ignored" else 0)  # a refused one is not recorded
        assert len(lines) == 1  # said once, in one line
        assert ("ignores logprob_token_ids" if old == "ignored" else "HTTP 400") in lines[0]


def test_token_ids_required_on_an_older_vllm_stops_the_run_in_one_line(
    local: Any, scored: Scored, key: None
) -> None:
    m, a = _ten_point(scored)
    with serve_fake_vllm(local.lm, token_ids="ignored") as (url, _), \
            _engine(url, server="vllm", logprob_token_ids=True) as engine, \
            pytest.raises(ProviderError) as err:
        engine.run([engine.request(m, a)])
    assert "\n" not in str(err.value)
    assert "does not read answers by token id" in str(err.value)
    assert "options.logprob_token_ids" in str(err.value)


def _ten_point(scored: Scored) -> tuple[tuple[ChatMessage, ...], tuple[str, ...]]:
    # an item whose first top-k holds "1", so a continuation is sent
    for (_, m, a), d in zip(scored.todo, scored.exact, strict=True):
        if len(a) == 10 and d.probs[0] > 0.05:
            return m, a
    raise AssertionError("no 10-point item")


@pytest.mark.parametrize("flavor", ["openai", "ignore"])
def test_a_server_that_ignores_the_fields_stops_the_run_in_one_line(
    local: Any, scored: Scored, key: None, flavor: str
) -> None:
    m, a = _ten_point(scored)
    with serve_fake_vllm(local.lm, flavor=flavor) as (url, _), _engine(url, server="vllm") as engine, \
            pytest.raises(ProviderError) as err:
        engine.run([engine.request(m, a)])
    message = str(err.value)
    assert "\n" not in message
    assert "ignores the continuation fields of server: vllm" in message
    assert ("HTTP 400" in message) if flavor == "openai" else ("fresh turn" in message)
    assert "fallback_top_logprobs" in message


def test_fallback_top_logprobs_when_allowed(
    local: Any, scored: Scored, key: None, capsys: pytest.CaptureFixture[str]
) -> None:
    m, a = _ten_point(scored)
    with serve_fake_vllm(local.lm, flavor="ignore") as (url, _), \
            _engine(url, server="vllm", fallback_top_logprobs=True) as engine:
        got = engine.run([engine.request(m, a), engine.request(m, a[:4])])
    assert [d.estimator for d in got] == ["top_logprobs"] * 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "falling back" in ln]
    assert len(lines) == 1  # said once, in one line


def test_auto_on_a_plain_server_says_so(local: Any, scored: Scored, key: None) -> None:
    m, a = _ten_point(scored)
    with serve_fake_vllm(local.lm, flavor="openai") as (url, _), _engine(url, server="auto") as engine, \
            pytest.raises(ProviderError, match="found neither vLLM nor SGLang"):
        engine.run([engine.request(m, a)])


def test_server_models_lists_what_the_server_serves(local: Any, key: None, tmp_path: Path) -> None:
    with serve_fake_vllm(local.lm, model_name="org/model-7b") as (url, _):
        spec = ModelSpec(provider="openai", model="org/model-7b", base_url=url, options={"server": "vllm"})
        provider = providers()["openai"].create(spec, state_dir=tmp_path)
        assert provider.server_models() == ["org/model-7b"]


def test_the_fake_checks_logprob_token_ids_as_vllm_does(local: Any) -> None:
    import httpx

    messages = [{"role": "user", "content": "Pick a number from 1 to 10."}]
    # loopback: no proxy from the environment
    with serve_fake_vllm(local.lm) as (url, _), httpx.Client(trust_env=False, timeout=60) as http:
        root = url.removesuffix("/v1")

        def chat(**fields: Any) -> httpx.Response:
            body = {"model": "smollm2-served", "messages": messages, "max_tokens": 1, **fields}
            return http.post(f"{url}/chat/completions", json=body)

        ids = http.post(f"{root}/tokenize", json={"prompt": "1234", "add_special_tokens": False}).json()["tokens"]
        assert http.post(f"{root}/detokenize", json={"tokens": ids}).json()["prompt"] == "1234"
        # asked ids come back whatever their rank, the generated token first, as token_id:N
        reply = chat(logprobs=True, logprob_token_ids=ids, return_tokens_as_token_ids=True).json()
        entry = reply["choices"][0]["logprobs"]["content"][0]
        listed = [int(c["token"].removeprefix("token_id:")) for c in entry["top_logprobs"]]
        assert entry["token"] == f"token_id:{listed[0]}"
        assert set(ids) <= set(listed)
        # vLLM's request checks (chat_completion/protocol.py check_logprobs; sampling_params.py)
        for fields, says in [
            ({"logprob_token_ids": ids}, "`logprobs` must be set to true"),
            ({"logprobs": True, "logprob_token_ids": []}, "must not be an empty list"),
            ({"logprobs": True, "logprob_token_ids": list(range(129))}, "greater than max allowed: 128"),
            ({"logprobs": True, "logprob_token_ids": [10**9]}, "out-of-vocab token ids"),
        ]:
            got = chat(**fields)
            assert got.status_code == 400
            assert says in got.json()["error"]["message"]

"""The built-in transformers provider with the embedded SmolLM2 model.

Tests marked slow load the model once per session (first time ever: ~20 s to
convert the GGUF file; afterwards ~3 s) and compare exact scoring with a
brute-force reference written here independently, for each answer rule: plain
forward passes over prompt + answer tokens, products of token probabilities.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.transformers_provider import TransformersProvider
from valuesim.llm.types import ChatMessage, Decoding, ScoreRequest
from valuesim.plugins import providers

PERSONA = (
    "You are participating in a social science simulation. You will be given a survey "
    "question and must answer it as someone living in Japan would, embracing this persona's "
    "values as your own.\n\nYour persona: You live in Japan. You think God is not at all "
    "important in your life. You value independence in children."
)


def _request(question: str, n: int, system: str = PERSONA, rule: str | None = None) -> ScoreRequest:
    scale = ", ".join(f"{i}=option {i}" for i in range(1, n + 1))
    user = f"Question:\n{question}\n\nScale: {scale}\n\nRespond with ONLY the single integer (1-{n}):"
    return ScoreRequest(
        (ChatMessage("system", system), ChatMessage("user", user)),
        tuple(str(i) for i in range(1, n + 1)),
        Decoding(answer_rule=rule),  # type: ignore[arg-type]
    )


REQUESTS = [
    _request("How important is Family in your life?", 4),
    _request("All things considered, how satisfied are you with your life as a whole?", 10),
    _request("How often do you attend religious services?", 8),
    _request("How interested would you say you are in politics?", 4, system="You are a helpful assistant."),
]


def test_importing_the_builtin_plugin_does_not_import_torch() -> None:
    code = (
        "import sys, valuesim.llm.transformers_provider, valuesim.plugins as p; "
        "assert 'transformers' in p.providers(); "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_factory_is_registered_with_its_capabilities() -> None:
    factory = providers()["transformers"]
    assert factory.package == "valuesim"
    caps = factory.capabilities
    assert caps.logprobs
    assert caps.text_generation
    assert not caps.sampling
    assert not caps.batch_api


def test_unknown_option_is_rejected_before_loading(tmp_path: Path) -> None:
    spec = ModelSpec(provider="transformers", model="embedded", options={"thread": 2})
    with pytest.raises(ProviderError, match="unknown transformers option"):
        providers()["transformers"].create(spec, state_dir=tmp_path)


def test_a_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    spec = ModelSpec(provider="transformers", model=str(empty), precision="fp32")
    with pytest.raises(ProviderError, match="cannot load model"):
        providers()["transformers"].create(spec, state_dir=tmp_path)


# -- with the model -----------------------------------------------------------


@pytest.fixture(scope="session")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> TransformersProvider:
    spec = ModelSpec(provider="transformers", model="embedded", precision="fp32")
    return providers()["transformers"].create(spec, state_dir=tmp_path_factory.mktemp("state"))


_DIGIT_START: dict[int, set[int]] = {}


def _digit_start(tok: object) -> set[int]:
    """Every token whose text begins with a digit, enumerated over the whole vocabulary
    one token at a time (once per tokenizer)."""
    if id(tok) not in _DIGIT_START:
        _DIGIT_START[id(tok)] = {t for t in range(len(tok)) if tok.decode([t])[:1] in set("0123456789")}  # type: ignore[attr-defined,arg-type]
    return _DIGIT_START[id(tok)]


def brute_force(
    provider: TransformersProvider, request: ScoreRequest, rule: str = "answer_eot"
) -> tuple[list[float], float]:
    """The rule's answer probabilities by plain forward passes; (probs, coverage)."""
    import torch

    lm, tok = provider.lm.model, provider.lm.tokenizer
    msgs = [{"role": m.role, "content": m.content} for m in request.messages]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]

    def logp_after(ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            out = lm(input_ids=torch.tensor([prompt_ids + ids])).logits[0, -1].double()
        return torch.log_softmax(out, dim=-1)

    bodies = {ans: tok(ans, add_special_tokens=False)["input_ids"] for ans in request.answers}
    digit_start = _digit_start(tok) if rule == "leading_integer" else set()
    raw = []
    for body in bodies.values():
        if rule == "first_token":
            raw.append(math.exp(float(logp_after([])[body[0]])))
            continue
        # answer_eot: the reply as the template writes it, answer then <|im_end|>
        ids = body + tok("<|im_end|>", add_special_tokens=False)["input_ids"] if rule == "answer_eot" else body
        p = math.exp(sum(float(logp_after(ids[:k])[t]) for k, t in enumerate(ids)))
        if rule in ("answer_start", "leading_integer"):
            # minus the mass of continuing into a longer answer ("1" then "0" is "10")
            extend = {o[len(body)] for o in bodies.values() if len(o) > len(body) and o[: len(body)] == body}
            if rule == "leading_integer":
                # ... and of every next token whose text begins with a digit ("1" then
                # "5" is the integer 15)
                extend |= digit_start
            if extend:
                after = logp_after(body)
                p *= 1.0 - sum(math.exp(float(after[t])) for t in extend)
        raw.append(p)
    if rule == "first_token":
        total = sum(math.exp(float(logp_after([])[t])) for t in {b[0] for b in bodies.values()})
    else:
        total = sum(raw)
    return [r / sum(raw) for r in raw], total


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["answer_start", "answer_eot", "first_token", "leading_integer"])
def test_exact_scoring_matches_brute_force(fp32: TransformersProvider, rule: str) -> None:
    reqs = [ScoreRequest(r.messages, r.answers, Decoding(answer_rule=rule)) for r in REQUESTS]  # type: ignore[arg-type]
    got = fp32.score(reqs)
    for req, dist in zip(reqs, got, strict=True):
        probs, coverage = brute_force(fp32, req, rule)
        assert dist.estimator == "logprobs"
        assert dist.answer_rule == rule
        assert not dist.flag
        assert dist.probs == pytest.approx(probs, abs=1e-5)
        assert dist.coverage == pytest.approx(coverage, rel=1e-4)
        assert 0.0 < dist.coverage <= 1.0
        assert math.fsum(dist.probs) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
def test_the_default_rule_is_answer_start_and_covers_more_than_answer_eot(
    fp32: TransformersProvider,
) -> None:
    start = fp32.score(REQUESTS)
    eot = fp32.score([ScoreRequest(r.messages, r.answers, Decoding(answer_rule="answer_eot")) for r in REQUESTS])
    for a, b in zip(start, eot, strict=True):
        assert a.answer_rule == "answer_start"
        assert b.answer_rule == "answer_eot"
        assert a.coverage > b.coverage


@pytest.mark.slow
def test_leading_integer_drops_replies_whose_integer_is_longer(fp32: TransformersProvider) -> None:
    import torch

    req = REQUESTS[1]  # 1-10 scale: after "1" SmolLM2 often goes on with another digit
    start = fp32.score([req])[0]
    lead = fp32.score([ScoreRequest(req.messages, req.answers, Decoding(answer_rule="leading_integer"))])[0]
    assert lead.answer_rule == "leading_integer"
    tok = fp32.lm.tokenizer
    msgs = [{"role": m.role, "content": m.content} for m in req.messages]
    prompt_ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    one = tok.convert_tokens_to_ids("1")
    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    with torch.inference_mode():
        logits = fp32.lm.model(input_ids=torch.tensor([[*prompt_ids, one]])).logits[0].double()
    p_one = float(torch.softmax(logits[-2], -1)[one])
    after_one = torch.softmax(logits[-1], -1)
    other_digits = float(sum(after_one[d] for d in digits if d != digits[0]))  # "11".."19"
    assert other_digits > 1e-3  # the rules differ here
    # answer_start counts "11".."19" for 1; leading_integer counts them for no answer
    raw_start, raw_lead = start.probs[0] * start.coverage, lead.probs[0] * lead.coverage
    assert raw_start - raw_lead == pytest.approx(p_one * other_digits, rel=1e-4)
    assert lead.coverage < start.coverage
    # the benchmark's naive reference reads the same rule
    from valuesim.benchmark import naive_score

    (naive,) = naive_score(fp32.lm, [ScoreRequest(req.messages, req.answers, Decoding(answer_rule="leading_integer"))])
    assert naive.answer_rule == "leading_integer"
    assert naive.probs == pytest.approx(lead.probs, abs=1e-5)
    assert naive.coverage == pytest.approx(lead.coverage, rel=1e-4)


@pytest.mark.slow
def test_answer_start_splits_one_from_ten_exactly(fp32: TransformersProvider) -> None:
    import torch

    req = REQUESTS[1]  # 1-10 scale: "10" is the token "1" then "0"
    dist = fp32.score([req])[0]
    tok = fp32.lm.tokenizer
    msgs = [{"role": m.role, "content": m.content} for m in req.messages]
    prompt_ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    one, zero = tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("0")
    with torch.inference_mode():
        logits = fp32.lm.model(input_ids=torch.tensor([[*prompt_ids, one]])).logits[0].double()
    p_one = float(torch.softmax(logits[-2], -1)[one])
    p_zero_after_one = float(torch.softmax(logits[-1], -1)[zero])
    # "1" keeps its token's mass minus what goes on to "10"; together they are P("1" first)
    assert dist.probs[0] * dist.coverage == pytest.approx(p_one * (1 - p_zero_after_one), rel=1e-4)
    assert dist.probs[9] * dist.coverage == pytest.approx(p_one * p_zero_after_one, rel=1e-4)


@pytest.mark.slow
def test_one_is_one_then_end_not_a_prefix_of_ten(fp32: TransformersProvider) -> None:
    import torch

    req = REQUESTS[1]  # 1-10 scale: "10" starts with the token "1"
    dist = fp32.score([ScoreRequest(req.messages, req.answers, Decoding(answer_rule="answer_eot"))])[0]
    tok = fp32.lm.tokenizer
    msgs = [{"role": m.role, "content": m.content} for m in req.messages]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        first = torch.softmax(fp32.lm.model(input_ids=ids).logits[0, -1].double(), -1)
    p_first_token_1 = float(first[tok.convert_tokens_to_ids("1")])
    raw_1 = dist.probs[0] * dist.coverage
    raw_10 = dist.probs[9] * dist.coverage
    # under answer_eot "1" alone and "10" both start with the token "1"; neither takes
    # all of its mass, and replies such as "1." count for neither
    assert 0.0 < raw_1 < p_first_token_1
    assert raw_1 + raw_10 <= p_first_token_1 * (1 + 1e-6)


@pytest.mark.slow
def test_prefix_reuse_equals_whole_prompts(fp32: TransformersProvider) -> None:
    from valuesim.llm.exact_scoring import PrefixCache, score_requests

    reused = score_requests(fp32.lm, REQUESTS, prefix_cache=PrefixCache())
    whole = score_requests(fp32.lm, REQUESTS, prefix_cache=PrefixCache(), reuse_prefix=False)
    assert reused[1].usage.cached_tokens > 0
    assert whole[1].usage.cached_tokens == 0
    for a, b in zip(reused, whole, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


@pytest.mark.slow
def test_fp32_is_deterministic(fp32: TransformersProvider) -> None:
    fp32.clear_prefix_cache()
    first = [d.to_json() for d in fp32.score(REQUESTS)]
    fp32.clear_prefix_cache()
    again = [d.to_json() for d in fp32.score(REQUESTS)]
    assert first == again


@pytest.mark.slow
def test_clear_prefix_cache_starts_cold(fp32: TransformersProvider) -> None:
    """The public prefix-cache API: a repeated prompt reuses its prefix until cleared."""
    fp32.score(REQUESTS[:1])
    warm = fp32.score(REQUESTS[:1])[0]
    fp32.clear_prefix_cache()
    cold = fp32.score(REQUESTS[:1])[0]
    assert warm.usage.cached_tokens > 0
    assert cold.usage.cached_tokens == 0
    assert cold.probs == pytest.approx(warm.probs, abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answers", "match"),
    [
        (("1", "1"), "duplicate"),
        (("1", " "), "empty"),
        (("1", "2<|im_end|>x"), "cannot express"),
        ((), "no admissible answers"),
    ],
)
def test_bad_answer_sets_are_clear_errors(fp32: TransformersProvider, answers: tuple[str, ...], match: str) -> None:
    req = ScoreRequest(REQUESTS[0].messages, answers)
    with pytest.raises(ProviderError, match=match):
        fp32.score([req])


@pytest.mark.slow
def test_other_estimators_are_refused(fp32: TransformersProvider) -> None:
    req = ScoreRequest(REQUESTS[0].messages, REQUESTS[0].answers, Decoding(estimator="sampling"))
    with pytest.raises(ProviderError, match="exactly"):
        fp32.score([req])


@pytest.mark.slow
def test_an_unknown_answer_rule_is_refused(fp32: TransformersProvider) -> None:
    req = ScoreRequest(REQUESTS[0].messages, REQUESTS[0].answers, Decoding(answer_rule="whole"))  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="answer_start, answer_eot, first_token"):
        fp32.score([req])


@pytest.mark.slow
def test_bf16_is_close_to_fp32_and_repeatable(fp32: TransformersProvider, tmp_path: Path) -> None:
    spec = ModelSpec(provider="transformers", model="embedded", precision="bf16")
    bf16 = providers()["transformers"].create(spec, state_dir=tmp_path)
    assert bf16.revision != fp32.revision  # precision changes answers
    a, b = bf16.score(REQUESTS), fp32.score(REQUESTS)
    bf16.clear_prefix_cache()
    assert [d.to_json() for d in bf16.score(REQUESTS)] == [d.to_json() for d in a]
    for x, y in zip(a, b, strict=True):
        assert 0.5 * sum(abs(p - q) for p, q in zip(x.probs, y.probs, strict=True)) < 0.15


@pytest.mark.slow
def test_generate_is_greedy_text(fp32: TransformersProvider) -> None:
    msgs = [ChatMessage("user", "Name one colour. Reply with one word.")]
    first = fp32.generate(msgs, max_tokens=8)
    assert first
    assert first == fp32.generate(msgs, max_tokens=8)

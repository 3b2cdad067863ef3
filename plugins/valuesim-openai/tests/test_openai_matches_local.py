"""The OpenAI plugin's top-k estimate against exact local scoring, on real logits.

A chat-completions server on 127.0.0.1 (:mod:`valuesim.testing.fake_vllm`) answers
from the embedded SmolLM2's own logits, as vLLM would serve it: the request's
messages rendered with the model's chat template, the top-``top_logprobs`` tokens of
each generated position with their log-softmax log-probabilities, greedy generation
(temperature 0) of ``max_tokens`` tokens, the persona's keys and values cached across
requests. It runs the plain causal-LM forward pass, not valuesim's batched trie
scoring. The real
``openai`` SDK and the plugin (through the engine) score real valuesim prompts
against it; the built-in transformers provider scores the same messages exactly
under ``answer_start``. ``valuesim.llm.answer_estimates`` says how far the two may
differ, and this checks it:

* items whose answers are single tokens (2- and 4-point scales: SmolLM2 spells every
  digit as a token of its own) with every answer in the top 20: not at all
  (TV <= 1e-3; what is left is float rounding, about 1e-6);
* every answer the estimate observed carries its exact ``answer_start`` mass, one by
  one: "1" and "10" split after a generated "1" included, and "1" holding "10"'s
  mass as well where the split was not observed;
* 10-point items ("10" is the tokens "1", "0"): TV within ``top_k_tv_bound``. On
  these prompts SmolLM2's top 20 misses most digits of a 10-point scale, so the
  bound is never 0 there; how close TV comes to it is printed (``-s``).

The comparison can fail: the same estimates are far from the local ``answer_eot``
distributions (reply = answer then end of turn), which is not what they measure.

Slow: loads the embedded model (first time ever: ~20 s to convert it) and runs about
50 CPU-seconds in all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from valuesim import prompts
from valuesim.config import ModelSpec
from valuesim.llm.answer_estimates import top_k_tv_bound
from valuesim.llm.engine import Engine
from valuesim.llm.types import AnswerDistribution, ChatMessage, Decoding, ScoreRequest
from valuesim.personas import descriptors
from valuesim.personas.build import persona_text
from valuesim.plugins import providers
from valuesim.survey.bank import load_bank
from valuesim.testing.fake_vllm import serve_fake_vllm

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
# 4-point and 2-point items (single-token answers), and 10-point items: on Q180
# ("Justifiable: cheating on taxes") SmolLM2 starts its reply with "1", so the
# split of "1" from "10" is observed; on Q106 with "I", so it is not.
SINGLE_TOKEN_ITEMS = ("Q1", "Q199", "Q57")
TEN_POINT_ITEMS = ("Q180", "Q106")
# persona item answers of two value personas (the bank's persona items)
VALUE_ROWS = (
    {"country": "JPN", "Q164": 1, "Y003": 2, "Q184": 8, "Q254": 2, "Q45": 3, "Y002": 3,
     "Q182": 9, "Q209": 1, "Q57": 1, "Q46": 2},
    {"country": "NGA", "Q164": 10, "Y003": -2, "Q184": 1, "Q254": 1, "Q45": 1, "Y002": 1,
     "Q182": 1, "Q209": 3, "Q57": 2, "Q46": 1},
)
MATCH_TV = 1e-3  # "equal" for single-token items: far above float noise, far below any rule difference
ROUNDING = 1e-4  # slack on the bound for float differences between the two forward passes


# -- the prompts: real valuesim prompts for two value personas and a country -------


def valuesim_prompts() -> list[tuple[str, tuple[ChatMessage, ...], tuple[str, ...]]]:
    """(label, messages, answers) as the simulate stage renders them."""
    bank = load_bank(ROOT / "data" / "questions" / "wvs7.yaml")
    value_set = descriptors.load(ROOT / "data" / "descriptors" / "value_handwritten.yaml", bank, kind="value")
    socio_set = descriptors.load(
        ROOT / "data" / "descriptors" / "sociodemographic.yaml", bank, kind="sociodemographic"
    )
    heads: list[tuple[str, str, str | None, str]] = [("country", "DEU", None, "DEU:country")]
    for row in VALUE_ROWS:
        text, missing = persona_text(row, "value", True, bank, value_set, socio_set)
        assert not missing
        heads.append(("value", str(row["country"]), text, f"{row['country']}:value"))
    out = []
    for method, country, persona, label in heads:
        for item_id in (*SINGLE_TOKEN_ITEMS, *TEN_POINT_ITEMS):
            item = bank.item(item_id)
            messages = prompts.render(method, item, country=country, persona=persona)
            out.append((f"{label}/{item_id}", messages, prompts.answer_strings(item)))
    return out


@dataclass
class Row:
    label: str
    answers: tuple[str, ...]
    generated: str  # the server's greedy first token
    estimate: AnswerDistribution  # openai plugin, top_logprobs
    start: AnswerDistribution  # local, answer_start
    eot: AnswerDistribution | None  # local, answer_eot (single-token items only)

    @property
    def single_token(self) -> bool:
        return all(len(a) == 1 for a in self.answers)

    @property
    def tv(self) -> float:
        return _tv(self.estimate, self.start)

    @property
    def bound(self) -> float:
        return top_k_tv_bound(self.estimate, self.start, self.answers)

    def masses(self) -> tuple[dict[str, float], dict[str, float]]:
        """Unnormalised masses by answer (estimate's observed ones only, exact's all):
        an estimate's coverage is its observed mass, the share of probability
        outside the floors."""
        est, ref = self.estimate, self.start
        observed = 1.0 - sum(p for a, p in zip(self.answers, est.probs, strict=True) if a in est.floored)
        return (
            {a: p * est.coverage / observed
             for a, p in zip(self.answers, est.probs, strict=True) if a not in est.floored},
            {a: p * ref.coverage for a, p in zip(self.answers, ref.probs, strict=True)},
        )


def _tv(a: AnswerDistribution, b: AnswerDistribution) -> float:
    return 0.5 * sum(abs(x - y) for x, y in zip(a.probs, b.probs, strict=True))


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    spec = ModelSpec(provider="transformers", model="embedded", precision="fp32")
    local = providers()["transformers"].create(spec, state_dir=tmp_path_factory.mktemp("state"))
    todo = valuesim_prompts()
    with pytest.MonkeyPatch.context() as mp, serve_fake_vllm(local.lm) as (url, fake):
        mp.setenv("OPENAI_API_KEY", "sk-local-test")  # loopback only; never a real key
        api = ModelSpec(provider="openai", model="smollm2-served", base_url=url, concurrency=1)
        with Engine("openai", api, progress=False, log=lambda _: None) as engine:
            assert engine.answer_rule == "answer_start"
            estimates = engine.run([engine.request(m, a) for _, m, a in todo])
    start = local.score([ScoreRequest(m, a, Decoding(answer_rule="answer_start")) for _, m, a in todo])
    # answer_eot only where the sanity check uses it (single-token items): it costs time
    single = [i for i, (_, _, a) in enumerate(todo) if all(len(x) == 1 for x in a)]
    eot = dict(zip(single, local.score(
        [ScoreRequest(todo[i][1], todo[i][2], Decoding(answer_rule="answer_eot")) for i in single]
    ), strict=True))
    assert len(fake.bodies) == len(todo)
    assert all(b["top_logprobs"] == 20 and b["max_tokens"] == 2 for b in fake.bodies)
    return [
        Row(label, answers, fake.generated[_wire(messages)], est, exact, eot.get(i))
        for i, ((label, messages, answers), est, exact) in enumerate(
            zip(todo, estimates, start, strict=True)
        )
    ]


def _wire(messages: Sequence[ChatMessage]) -> str:
    """The messages as the plugin sends them (the key of ``FakeVLLM.generated``)."""
    return json.dumps([{"role": m.role, "content": m.content} for m in messages])


def _report(rows: Sequence[Row]) -> str:
    return "\n".join(
        f"{r.label:16s} first={r.generated!r:8s} floored={','.join(r.estimate.floored) or '-':18s} "
        f"TV={r.tv:.2e} bound={r.bound:.2e} coverage top-k={r.estimate.coverage:.3f} "
        f"exact={r.start.coverage:.3f}"
        for r in rows
    )


def test_estimates_measure_answer_start_and_are_unflagged(rows: list[Row]) -> None:
    for r in rows:
        assert r.estimate.estimator == "top_logprobs"
        assert r.estimate.answer_rule == r.start.answer_rule == "answer_start"
        assert not r.estimate.flag
        assert not r.start.flag


def test_single_token_items_match_exact_answer_start(rows: list[Row]) -> None:
    matched = [r for r in rows if r.single_token and not r.estimate.floored]
    assert len(matched) >= 6, _report(rows)  # not vacuous: most 2- and 4-point prompts qualify
    for r in matched:
        assert r.bound == 0.0
        assert r.tv <= MATCH_TV, _report([r])
        # the observed mass is the exact coverage too: nothing is left out
        assert r.estimate.coverage == pytest.approx(r.start.coverage, abs=MATCH_TV)
    print(f"\nsingle-token items: {len(matched)} compared, max TV {max(r.tv for r in matched):.2e}")


def test_observed_answers_carry_their_exact_mass(rows: list[Row]) -> None:
    """Answer by answer, not only in total: an observed answer gets its exact
    answer_start mass; "1" also "10"'s when the split between them was not seen."""
    checked = 0
    for r in rows:
        est, ref = r.masses()
        for a, m in est.items():
            moved = sum(ref[b] for b in r.answers if b != a and b.startswith(a) and b in r.estimate.floored)
            assert m == pytest.approx(ref[a] + moved, rel=MATCH_TV), (a, _report([r]))
            checked += 1
    ten = [r for r in rows if not r.single_token]
    # the split itself: after a generated "1", "1" keeps P(1) x (1 - P(0 | 1)) and "10"
    # gets P(1) x P(0 | 1), both as local exact scoring computes them
    split = [r for r in ten if r.generated == "1" and "10" in r.masses()[0]]
    assert split, _report(ten)
    assert checked >= 30  # answers compared one by one


def test_ten_point_items_stay_within_the_bound(rows: list[Row]) -> None:
    ten = [r for r in rows if not r.single_token]
    assert len(ten) == 3 * len(TEN_POINT_ITEMS)
    for r in ten + [r for r in rows if r.single_token and r.estimate.floored]:
        assert r.tv <= r.bound + ROUNDING, _report([r])
    observed = [r for r in ten if r.generated == "1"]
    unobserved = [r for r in ten if r.generated != "1"]
    # both cases occur on these prompts (SmolLM2 starts with "1" or with "I"/"The")
    assert observed, _report(ten)
    assert unobserved, _report(ten)
    for r in observed:
        assert "10" not in r.estimate.floored  # "0" was in the next position's top 20
    for r in unobserved:
        assert "10" in r.estimate.floored
        assert r.bound > 0
    print(
        f"\n10-point items: {len(ten)}, split observed in {len(observed)}; bound > 0 in "
        f"{sum(r.bound > 0 for r in ten)}; max TV {max(r.tv for r in ten):.3e}, max bound "
        f"{max(r.bound for r in ten):.3e}, max TV/bound "
        f"{max((r.tv / r.bound for r in ten if r.bound > 0), default=0.0):.2f}\n{_report(ten)}"
    )


def test_the_comparison_can_fail(rows: list[Row]) -> None:
    # What the estimate does not measure is told apart: answer_eot (answer then end of
    # turn) differs from answer_start wherever the model may go on after a digit.
    matched = [r for r in rows if r.single_token and not r.estimate.floored]
    tvs = [_tv(r.estimate, r.eot) for r in matched if r.eot is not None]
    assert len(tvs) == len(matched)
    far = [x for x in tvs if x > MATCH_TV]
    assert len(far) >= len(matched) // 2, _report(matched)
    print(f"\nagainst answer_eot: {len(far)} of {len(matched)} beyond {MATCH_TV}, max TV {max(tvs):.3f}")

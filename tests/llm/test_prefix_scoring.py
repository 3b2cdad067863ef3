"""The exact split of prefix answers, from continuation top-k or by token id (no server, no model)."""

from __future__ import annotations

import math

import pytest

from valuesim.errors import ProviderError
from valuesim.llm.prefix_scoring import (
    answer_token_trie,
    continuation_prefixes,
    extend_prefixes,
    from_prefix_continuations,
    from_token_logprobs,
    slot_token_ids,
)

TEN = tuple(str(i) for i in range(1, 11))


def lp(d: dict[str, float]) -> dict[str, float]:
    return {k: math.log(v) for k, v in d.items()}


def test_prefix_mass_is_split_exactly_by_the_next_token() -> None:
    first = lp({"1": 0.5, "7": 0.3, "I": 0.2})
    nxt = {"1": lp({"0": 0.6, ".": 0.25, "5": 0.1, "0.": 0.05})}
    d = from_prefix_continuations(first, nxt, TEN)
    p = dict(zip(TEN, (x * d.coverage for x in d.probs), strict=True))
    assert d.estimator == "logprobs"
    assert d.answer_rule == "answer_start"
    # "10" = P(1) x P(0 or 0. next); "1" keeps the rest, "15" (no answer) included
    assert p["10"] == pytest.approx(0.5 * 0.65)
    assert p["1"] == pytest.approx(0.5 * 0.35)
    assert p["7"] == pytest.approx(0.3)
    assert set(d.floored) == set(TEN) - {"1", "7", "10"}


def test_variants_share_the_split_and_missing_continuation_keeps_the_mass() -> None:
    first = lp({"1": 0.4, " 1": 0.1, "2": 0.5})
    d = from_prefix_continuations(first, {"1": lp({"0": 0.5})}, TEN)
    p = dict(zip(TEN, (x * d.coverage for x in d.probs), strict=True))
    assert p["10"] == pytest.approx(0.25)
    assert p["1"] == pytest.approx(0.25)
    # without a continuation "1" keeps everything and "10" is floored
    d = from_prefix_continuations(first, {}, TEN)
    assert "10" in d.floored
    assert d.coverage == pytest.approx(1.0)


def test_the_trie_goes_deeper_than_one_token() -> None:
    answers = ("1", "10", "100", "2")
    first = lp({"1": 0.8, "2": 0.2})
    reach = continuation_prefixes(first, answers)
    assert reach == {"1": "1"}
    after_1 = lp({"0": 0.5, "\n": 0.5})
    extend_prefixes(reach, "1", after_1, answers)
    assert reach == {"1": "1", "10": "10"}
    d = from_prefix_continuations(first, {"1": after_1, "10": lp({"0": 0.4, ".": 0.6})}, answers)
    p = dict(zip(answers, (x * d.coverage for x in d.probs), strict=True))
    assert p == pytest.approx({"1": 0.4, "10": 0.4 * 0.6, "100": 0.4 * 0.4, "2": 0.2})
    assert not d.floored


def test_most_probable_spelling_is_continued() -> None:
    assert continuation_prefixes(lp({" 1": 0.3, "1": 0.1, "7": 0.6}), TEN) == {"1": " 1"}
    assert continuation_prefixes(lp({"7": 0.6}), TEN) == {}


# -- by token id (vLLM's logprob_token_ids) ------------------------------------------------

DIGIT = {str(d): 100 + d for d in range(10)}  # a digit-splitting tokenizer: one id per digit
SPLIT = [tuple(DIGIT[c] for c in a) for a in TEN]  # "10" is "1", "0"


def test_token_ids_asked_at_each_position() -> None:
    trie = answer_token_trie(SPLIT)
    assert trie.contexts == ((DIGIT["1"],),)  # "1" may still grow into "10"
    assert slot_token_ids(trie) == [tuple(sorted(DIGIT[str(d)] for d in range(1, 10))), (DIGIT["0"],)]


def test_prefix_answer_split_exactly_by_its_continuing_digit() -> None:
    trie = answer_token_trie(SPLIT)
    first = {DIGIT[str(d)]: math.log(0.05) for d in range(2, 10)}  # 0.4 on 2-9
    first[DIGIT["1"]] = math.log(0.5)
    after_one = {DIGIT["0"]: math.log(0.6)}  # the rest ("." or end of turn, "5") stays with 1
    d = from_token_logprobs(trie, [first, after_one])
    p = dict(zip(TEN, (x * d.coverage for x in d.probs), strict=True))
    assert (d.estimator, d.answer_rule, d.floored, d.flag) == ("logprobs", "answer_start", (), "")
    assert p["10"] == pytest.approx(0.5 * 0.6)
    assert p["1"] == pytest.approx(0.5 * 0.4)
    assert p["7"] == pytest.approx(0.05)
    assert d.coverage == pytest.approx(0.9)


def test_a_single_token_ten_needs_no_continuation() -> None:
    # Llama 3 spells "10" as one token: the exact rule reads "1" from its own token only
    seqs = [*SPLIT[:9], (999,)]
    trie = answer_token_trie(seqs)
    assert trie.contexts == ()
    first = {t: math.log(0.1) for t in slot_token_ids(trie)[0]}
    d = from_token_logprobs(trie, [first])
    assert d.probs == pytest.approx([0.1] * 10)


def test_a_missing_token_id_is_an_error_not_a_zero() -> None:
    trie = answer_token_trie(SPLIT)
    first = {DIGIT[str(d)]: math.log(0.1) for d in range(1, 10)}
    with pytest.raises(ProviderError, match="no log-probability for token id 100"):
        from_token_logprobs(trie, [first, {}])
    with pytest.raises(ProviderError, match="identical"):
        answer_token_trie([(1,), (1,)])


def test_no_answer_with_any_probability_is_flagged() -> None:
    trie = answer_token_trie(SPLIT)
    first = {DIGIT[str(d)]: -math.inf for d in range(1, 10)}
    d = from_token_logprobs(trie, [first, {DIGIT["0"]: -math.inf}])
    assert d.coverage == 0.0
    assert d.flag.startswith("coverage 0")

"""Mapping API outputs (top-k, samples, verbalized JSON) onto admissible answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from valuesim.errors import ProviderError
from valuesim.llm.answer_estimates import (
    MIN_FLOOR,
    check_answer_rule,
    from_samples,
    from_top_logprobs,
    from_verbalized,
    parse_reply,
    prefix_answers,
    top_k_tv_bound,
)
from valuesim.llm.types import AnswerDistribution, ChatMessage, Decoding, ScoreRequest

TEN = tuple(str(i) for i in range(1, 11))
FOUR = ("1", "2", "3", "4")


def lp(d: dict[str, float]) -> dict[str, float]:
    return {k: math.log(v) for k, v in d.items()}


def test_whitespace_and_case_variants_merge() -> None:
    d = from_top_logprobs(lp({"2": 0.5, " 2": 0.2, "2\n": 0.1, "1": 0.2}), FOUR)
    assert d.coverage == pytest.approx(1.0)
    assert d.probs[1] / d.probs[0] == pytest.approx(0.8 / 0.2)


def test_missing_answers_are_floored_below_smallest_observed() -> None:
    d = from_top_logprobs(lp({"2": 0.6, "1": 0.3, "x": 0.05}), FOUR)
    assert set(d.floored) == {"3", "4"}
    assert d.probs[2] == d.probs[3] > 0
    # floor = min(smallest observed / 2, unobserved mass / n missing) = min(0.025, 0.025)
    assert d.probs[2] / d.probs[0] == pytest.approx(0.025 / 0.3)
    assert d.probs[2] < 0.05 / (0.9 + 2 * 0.025)  # below the smallest observed (renormalised)
    assert d.coverage == pytest.approx(0.9)


def test_floor_never_exceeds_unobserved_mass() -> None:
    d = from_top_logprobs(lp({"1": 0.999, "2": 0.0009}), FOUR)
    unobserved = 1 - 0.999 - 0.0009
    scale = sum([0.999, 0.0009]) + 2 * (unobserved / 2)
    assert d.probs[2] * scale == pytest.approx(unobserved / 2)


def test_prefix_split_from_next_position() -> None:
    d = from_top_logprobs(
        lp({"1": 0.5, "7": 0.5}), TEN, generated_first="1",
        following=lp({"0": 0.7, "\n": 0.2, "3": 0.1}),
    )
    p = dict(zip(TEN, d.probs, strict=True))
    # answer_start: "10" = 0.5 x 0.7; "1" = 0.5 x (1 - 0.7), "13" (off-scale) included
    assert d.answer_rule == "answer_start"
    assert p["10"] / p["7"] == pytest.approx(0.35 / 0.5)
    assert p["1"] / p["7"] == pytest.approx(0.15 / 0.5)
    assert d.coverage == pytest.approx(1.0)
    assert "10" not in d.floored


def test_continuations_outside_the_top_k_count_for_the_shorter_answer() -> None:
    # After "1": "0" 0.5, "5" 0.2 (no answer), "." 0.1; 0.2 is outside the top-k.
    d = from_top_logprobs(
        lp({"1": 0.4, "2": 0.6}), TEN, generated_first="1",
        following=lp({"0": 0.5, "5": 0.2, ".": 0.1}),
    )
    p = dict(zip(TEN, d.probs, strict=True))
    # "1" = 0.4 x (1 - 0.5) = 0.2, "10" = 0.4 x 0.5 = 0.2, "2" = 0.6; the top-k covers
    # all the first-token mass, so the seven missing answers get the minimum floor.
    assert (p["1"], p["2"], p["10"]) == pytest.approx((0.2, 0.6, 0.2))
    assert d.coverage == pytest.approx(1.0)
    assert set(d.floored) == {"3", "4", "5", "6", "7", "8", "9"}
    assert p["3"] * (1.0 + 7 * MIN_FLOOR) == pytest.approx(MIN_FLOOR)


def test_a_continuation_missing_from_the_next_top_k_floors_the_longer_answer() -> None:
    d = from_top_logprobs(
        lp({"1": 0.5, "7": 0.3}), TEN, generated_first="1", following=lp({"\n": 0.6, ".": 0.3}),
    )
    p = dict(zip(TEN, d.probs, strict=True))
    assert "10" in d.floored
    assert "1" not in d.floored
    assert p["1"] / p["7"] == pytest.approx(0.5 / 0.3)  # all of "1" counts for 1
    assert d.coverage == pytest.approx(0.8)


def test_a_token_spelling_an_answer_and_a_separator_counts_for_it() -> None:
    # "1." and "10." are the answers 1 and 10 followed by punctuation; "1 " has ended
    # (it cannot grow into "10"), so 10 is floored only because nothing observed it.
    d = from_top_logprobs(lp({"1.": 0.2, "10.": 0.3, "1 ": 0.1, "7x": 0.1, "2": 0.3}), TEN)
    p = dict(zip(TEN, d.probs, strict=True))
    assert p["1"] / p["2"] == pytest.approx(0.3 / 0.3)
    assert p["10"] / p["2"] == pytest.approx(0.3 / 0.3)
    assert "10" not in d.floored
    assert d.coverage == pytest.approx(0.9)  # "7x" is not the answer 7
    d = from_top_logprobs(lp({"1 ": 0.6, "2": 0.4}), TEN, generated_first="1 ", following=lp({"0": 0.9}))
    p = dict(zip(TEN, d.probs, strict=True))
    assert p["1"] / p["2"] == pytest.approx(0.6 / 0.4)  # "1 " then "0" is "1 0", not 10
    assert "10" in d.floored


def test_a_longer_answer_ending_in_a_separator_token_counts() -> None:
    d = from_top_logprobs(
        lp({"1": 1.0}), TEN, generated_first="1", following=lp({"0.": 0.6, "0": 0.2, "00": 0.1}),
    )
    p = dict(zip(TEN, d.probs, strict=True))
    # "10." and "10" are 10 (0.8); "100" is no answer and, like the unseen 0.1, counts
    # for 1 as answer_start's "does not continue into a longer admissible answer"
    assert p["10"] / p["1"] == pytest.approx(0.8 / 0.2)


def test_prefix_without_continuation_goes_to_short_answer_and_floors_long() -> None:
    d = from_top_logprobs(lp({"7": 0.6, "1": 0.3}), TEN, generated_first="7")
    p = dict(zip(TEN, d.probs, strict=True))
    assert "10" in d.floored
    assert "1" not in d.floored
    assert p["1"] / p["7"] == pytest.approx(0.5)


def test_a_prefix_that_is_no_answer_itself_splits_between_longer_ones() -> None:
    answers = ("10", "11", "12")
    d = from_top_logprobs(
        lp({"1": 0.8, "x": 0.2}), answers, generated_first="1",
        following=lp({"0": 0.5, "1": 0.25, "\n": 0.25}),
    )
    assert d.probs == pytest.approx((2 / 3, 1 / 3, MIN_FLOOR / 0.6), rel=1e-6)
    assert d.coverage == pytest.approx(0.8 * 0.75)  # "1" then end of line is no answer


def test_single_token_ten_counts_directly() -> None:
    d = from_top_logprobs(lp({"10": 0.4, "9": 0.6}), TEN, generated_first="9")
    assert d.probs[9] / d.probs[8] == pytest.approx(0.4 / 0.6)


def test_no_admissible_answer_is_flagged() -> None:
    d = from_top_logprobs(lp({"Sure": 0.9, "I": 0.1}), FOUR)
    assert d.coverage == 0
    assert d.flag
    assert d.probs == pytest.approx((0.25,) * 4)


@given(st.dictionaries(st.sampled_from(["1", " 2", "3", "4", "x", "10", "1 "]),
                       st.floats(0.001, 1.0), min_size=1))
def test_always_a_distribution(weights: dict[str, float]) -> None:
    total = sum(weights.values())
    d = from_top_logprobs({k: math.log(v / total) for k, v in weights.items()}, TEN)
    assert math.fsum(d.probs) == pytest.approx(1.0)
    assert all(p >= MIN_FLOOR / 2 for p in d.probs)
    assert 0 <= d.coverage <= 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("7", "7"), (" 7.", "7"), ("10", "10"), ("10 - agree", "10"), ("1", "1"), ("15", None),
     ("I think 7", None), ("", None), ("7a", None)],
)
def test_parse_reply(reply: str, expected: str | None) -> None:
    i = parse_reply(reply, TEN)
    assert (TEN[i] if i is not None else None) == expected


def test_samples() -> None:
    d = from_samples(["2", "2", "3", "nope"], FOUR)
    assert d.probs == pytest.approx((0, 2 / 3, 1 / 3, 0))
    assert d.coverage == pytest.approx(0.75)
    assert d.estimator == "sampling"
    assert d.answer_rule == "answer_start"
    assert from_samples(["nope"], FOUR).flag
    # a reply "15" on a 1-10 scale is no answer (the exact rule would count it for 1)
    assert from_samples(["15", "1"], TEN).coverage == pytest.approx(0.5)


def test_verbalized() -> None:
    d = from_verbalized('Sure: {"1": 0.2, "2": 0.6, "5": 0.2}', FOUR)
    assert d.probs == pytest.approx((0.25, 0.75, 0, 0))
    assert d.coverage == pytest.approx(0.8)
    assert d.answer_rule == "stated"
    for bad in ("no json", "{not json}", '{"1": "high"}', '["1"]', '{"9": 1}'):
        assert from_verbalized(bad, FOUR).flag, bad
        assert from_verbalized(bad, FOUR).answer_rule == "stated"


@pytest.mark.parametrize(
    ("estimator", "rule", "ok"),
    [("top_logprobs", None, True), ("top_logprobs", "answer_start", True),
     ("top_logprobs", "answer_eot", False), ("sampling", "first_token", False),
     ("top_logprobs", "leading_integer", False), ("sampling", "leading_integer", False),
     ("sampling", "answer_start", True), ("verbalized", None, True),
     ("verbalized", "answer_start", False)],
)
def test_check_answer_rule(estimator: str, rule: str | None, ok: bool) -> None:
    req = ScoreRequest((ChatMessage("user", "q"),), FOUR, Decoding(answer_rule=rule))  # type: ignore[arg-type]
    if ok:
        check_answer_rule("api", req, estimator)  # type: ignore[arg-type]
        return
    with pytest.raises(ProviderError, match="answer_rule") as info:
        check_answer_rule("api", req, estimator)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


# -- how far the top-k estimate can be from the exact answer_start distribution ------


def exact(masses: dict[str, float], answers: tuple[str, ...] = TEN) -> AnswerDistribution:
    """An exact answer_start distribution with these unnormalised masses."""
    m = [masses.get(a, 0.0) for a in answers]
    return AnswerDistribution(tuple(x / sum(m) for x in m), sum(m), "logprobs")


def tv(a: AnswerDistribution, b: AnswerDistribution) -> float:
    return 0.5 * sum(abs(x - y) for x, y in zip(a.probs, b.probs, strict=True))


def test_tv_bound_when_the_split_was_not_observed() -> None:
    # The model: "7" 0.6, "8" 0.2, "1" 0.15 of which a third goes on to "10"; "Sure"
    # 0.03 and 0.02 outside the top-k. It generates "7", so the split is unseen.
    ref = exact({"1": 0.10, "10": 0.05, "7": 0.6, "8": 0.2})
    est = from_top_logprobs(lp({"7": 0.6, "8": 0.2, "1": 0.15, "Sure": 0.03}), TEN, generated_first="7")
    assert set(est.floored) == {"2", "3", "4", "5", "6", "9", "10"}
    # each floor: min(0.03 / 2, 0.02 / 7); the estimate's total is 0.95 + 0.02 = 0.97
    floors = 0.02
    # W = exact mass of the floored answers = 0.05 (all of it "10")
    assert top_k_tv_bound(est, ref, TEN) == pytest.approx((0.05 + floors) / 0.97)
    # by hand: |0.15/0.97 - 0.1/0.95| + |0.6/0.97 - 0.6/0.95| + |0.2/0.97 - 0.2/0.95|
    #          + 6 floors/0.97 + |floor/0.97 - 0.05/0.95|, halved
    floor = 0.02 / 7
    by_hand = 0.5 * (
        abs(0.15 / 0.97 - 0.10 / 0.95) + abs(0.6 / 0.97 - 0.6 / 0.95) + abs(0.2 / 0.97 - 0.2 / 0.95)
        + 6 * floor / 0.97 + abs(floor / 0.97 - 0.05 / 0.95)
    )
    assert tv(est, ref) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(0.06705, abs=1e-5)
    assert tv(est, ref) <= top_k_tv_bound(est, ref, TEN)


def test_tv_bound_is_zero_and_met_when_everything_was_observed() -> None:
    ref = exact({"1": 0.1, "2": 0.5, "3": 0.3, "4": 0.05}, FOUR)
    est = from_top_logprobs(lp({"2": 0.5, "3": 0.3, "1": 0.1, "4": 0.05, "I": 0.05}), FOUR)
    assert top_k_tv_bound(est, ref, FOUR) == 0.0
    assert tv(est, ref) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="answer_start"):
        top_k_tv_bound(est, AnswerDistribution(ref.probs, 0.95, "logprobs", answer_rule="answer_eot"), FOUR)


VOCAB = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", ".", "\n", "Sure", "I", "x")


@given(
    st.lists(st.floats(0.0, 1.0), min_size=len(VOCAB), max_size=len(VOCAB)),
    st.lists(st.floats(0.0, 1.0), min_size=len(VOCAB), max_size=len(VOCAB)),
    st.integers(1, len(VOCAB)),
)
def test_tv_bound_holds_for_any_model(first_w: list[float], after_one_w: list[float], k: int) -> None:
    """A random next-token model over VOCAB, answered 1-10: the exact answer_start
    masses against its top-k estimate, whatever it generates and however narrow k."""
    assume(sum(first_w) > 0 and sum(after_one_w) > 0)
    first = {t: w / sum(first_w) for t, w in zip(VOCAB, first_w, strict=True)}
    after_one = {t: w / sum(after_one_w) for t, w in zip(VOCAB, after_one_w, strict=True)}
    masses = {d: first[d] for d in "23456789"}
    masses["1"] = first["1"] * (1 - after_one["0"])
    masses["10"] = first["1"] * after_one["0"]
    assume(sum(masses.values()) > 1e-9)
    ref = exact(masses)

    def top(dist: dict[str, float]) -> dict[str, float]:
        kept = sorted((t for t in dist if dist[t] > 0), key=lambda t: -dist[t])[:k]
        return {t: math.log(dist[t]) for t in kept}

    generated = max(first, key=lambda t: first[t])
    # after anything but "1" the next position says nothing about "1" vs "10"
    following = top(after_one) if generated == "1" else top({"\n": 1.0})
    est = from_top_logprobs(top(first), TEN, generated_first=generated, following=following)
    assume(not est.flag)
    assert tv(est, ref) <= top_k_tv_bound(est, ref, TEN) + 1e-9


def test_prefix_answers_are_proper_prefixes_of_another_answer() -> None:
    assert prefix_answers(TEN) == ("1",)
    assert prefix_answers(FOUR) == ()
    assert prefix_answers(("Agree", "Agree strongly", "No", "Nothing", "N")) == (
        "Agree",
        "No",
        "N",
    )
    assert prefix_answers(("1", "1")) == ()  # a duplicate is not a proper prefix

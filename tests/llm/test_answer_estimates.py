"""Mapping API outputs (top-k, samples, verbalized JSON) onto admissible answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from valuesim.llm.answer_estimates import (
    MIN_FLOOR,
    from_samples,
    from_top_logprobs,
    from_verbalized,
    parse_reply,
)

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
    assert p["10"] / p["1"] == pytest.approx(0.7 / 0.2)
    assert d.coverage == pytest.approx(0.5 + 0.5 * 0.9)  # "13" is off-scale
    assert "10" not in d.floored


def test_prefix_without_continuation_goes_to_short_answer_and_floors_long() -> None:
    d = from_top_logprobs(lp({"7": 0.6, "1": 0.3}), TEN, generated_first="7")
    p = dict(zip(TEN, d.probs, strict=True))
    assert "10" in d.floored
    assert "1" not in d.floored
    assert p["1"] / p["7"] == pytest.approx(0.5)


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
    assert from_samples(["nope"], FOUR).flag


def test_verbalized() -> None:
    d = from_verbalized('Sure: {"1": 0.2, "2": 0.6, "5": 0.2}', FOUR)
    assert d.probs == pytest.approx((0.25, 0.75, 0, 0))
    assert d.coverage == pytest.approx(0.8)
    for bad in ("no json", "{not json}", '{"1": "high"}', '["1"]', '{"9": 1}'):
        assert from_verbalized(bad, FOUR).flag, bad

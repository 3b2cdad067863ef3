"""The answer trie and the exact-scoring helpers (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from valuesim.llm.exact_scoring import build_trie

END = 2


def test_trie_of_a_ten_point_scale_scores_1_and_10_apart() -> None:
    # digits as token ids 33 ("1") .. 41 ("9"), 32 ("0"): "10" is two tokens
    seqs = [(33 + d - 1, END) for d in range(1, 10)] + [(33, 32, END)]
    trie = build_trie(seqs)
    # contexts: after "1".."9" and after "10"
    assert trie.contexts == (*[(33 + d - 1,) for d in range(1, 10)], (33, 32))
    # "1" = P(1 | prompt) * P(end | "1"); "10" = P(1) * P(0 | "1") * P(end | "10")
    assert trie.steps[0] == ((0, 33), (1, END))
    assert trie.steps[9] == ((0, 33), (1, 32), (10, END))
    # "10" sees "1" as its ancestor, "2" does not
    assert trie.ancestors[9, 0]
    assert trie.ancestors[9, 9]
    assert not trie.ancestors[9, 1]
    assert not trie.ancestors[0, 9]


def test_answer_start_trie_takes_the_extension_off_the_prefix() -> None:
    from valuesim.llm.exact_scoring import answer_logprobs

    # bodies without the end token: "1".."9" one token each, "10" = "1" then "0"
    bodies = [(33 + d - 1,) for d in range(1, 10)] + [(33, 32)]
    trie = build_trie(bodies, "answer_start", END)
    # only "1" has a longer answer starting with it: one context, after "1"
    assert trie.contexts == ((33,),)
    assert trie.steps[0] == ((0, 33),)
    assert trie.steps[9] == ((0, 33), (1, 32))
    assert trie.stops[0] == (1, (32,))  # "1" loses what continues into "0"
    assert all(stop == (-1, ()) for stop in trie.stops[1:])
    # next-token log-probs at slot 0 (after the prompt) and slot 1 (after "1")
    logp = np.full((2, 50), -np.inf)
    logp[0, 33], logp[0, 34] = np.log(0.5), np.log(0.3)  # P("1") = .5, P("2") = .3
    logp[1, 32], logp[1, END] = np.log(0.4), np.log(0.5)  # after "1": "0" .4, end .5
    per_answer, coverage = answer_logprobs(trie, logp)
    probs = np.exp(per_answer)
    assert probs[0] == pytest.approx(0.5 * (1 - 0.4))  # "1" followed by anything but "0"
    assert probs[9] == pytest.approx(0.5 * 0.4)  # "10"
    assert probs[1] == pytest.approx(0.3)
    assert coverage == pytest.approx(0.8)  # P(reply starts with an answer) = .5 + .3


def test_leading_integer_takes_every_digit_continuation_off() -> None:
    from valuesim.llm.exact_scoring import answer_logprobs

    # "0".."9" are token ids 32..41, "." is 46; "10" = "1" then "0"
    digits = range(32, 42)
    bodies = [(33 + d - 1,) for d in range(1, 10)] + [(33, 32)]
    trie = build_trie(bodies, "leading_integer", END, digits=digits)
    # every answer needs the distribution after it: "1".."9" and "10"
    assert len(trie.contexts) == 10
    assert all(nxt == tuple(digits) for _, nxt in trie.stops)
    logp = np.full((11, 50), -np.inf)
    logp[0, 33], logp[0, 34] = np.log(0.5), np.log(0.3)  # P("1") = .5, P("2") = .3
    slot = {ctx: i + 1 for i, ctx in enumerate(trie.contexts)}
    after_1, after_2, after_10 = slot[(33,)], slot[(34,)], slot[(33, 32)]
    # after "1": "0" .4, "5" .1 (a reply "15"), "." .2, end .3
    logp[after_1, 32], logp[after_1, 37], logp[after_1, 46], logp[after_1, END] = np.log([0.4, 0.1, 0.2, 0.3])
    logp[after_2, 35], logp[after_2, END] = np.log(0.25), np.log(0.75)  # "23" .25
    logp[after_10, 32], logp[after_10, END] = np.log(0.5), np.log(0.5)  # "100" .5
    probs = np.exp(answer_logprobs(trie, logp)[0])
    assert probs[0] == pytest.approx(0.5 * (0.2 + 0.3))  # "1." and "1" then end; not "15"
    assert probs[9] == pytest.approx(0.5 * 0.4 * 0.5)  # "10" and not "100"
    assert probs[1] == pytest.approx(0.3 * 0.75)
    # answer_start reads the same logits with "15" counted for 1, "23" for 2, "100" for 10
    start = np.exp(answer_logprobs(build_trie(bodies, "answer_start", END), logp[: 1 + 1])[0])
    assert start[0] == pytest.approx(0.5 * 0.6)
    assert start[1] == pytest.approx(0.3)


def test_leading_integer_leaves_answers_without_a_final_digit_as_answer_start() -> None:
    trie = build_trie([(50,), (50, 51), (33,)], "leading_integer", END, digits={32, 33},
                      numeric=[False, False, True])
    assert trie.stops[0][1] == (51,)  # "a" loses only its extension into "ab"
    assert trie.stops[1] == (-1, ())
    assert trie.stops[2][1] == (32, 33)
    with pytest.raises(ValueError, match="digit tokens"):
        build_trie([(33,)], "leading_integer", END)


def test_answer_eot_and_first_token_tries() -> None:
    from valuesim.llm.exact_scoring import answer_logprobs

    bodies = [(33,), (33, 32)]  # "1" and "10"
    eot = build_trie(bodies, "answer_eot", END)
    assert eot.sequences == ((33, END), (33, 32, END))
    first = build_trie(bodies, "first_token", END)
    assert first.contexts == ()
    logp = np.full((1, 50), -np.inf)
    logp[0, 33] = np.log(0.6)
    per_answer, coverage = answer_logprobs(first, logp)
    # both answers get P("1"); the token is counted once in the coverage
    assert np.exp(per_answer) == pytest.approx([0.6, 0.6])
    assert coverage == pytest.approx(0.6)


def test_trie_of_single_token_answers_needs_one_context_each() -> None:
    trie = build_trie([(33, END), (34, END)])
    assert trie.contexts == ((33,), (34,))
    assert np.array_equal(trie.ancestors, np.eye(2, dtype=bool))


@pytest.mark.parametrize("logp", [-np.inf, -2000.0])
def test_no_mass_on_any_answer_is_a_flagged_row(logp: float) -> None:
    import torch

    from valuesim.llm.exact_scoring import _distribution, _Encoded

    trie = build_trie([(33, END), (34, END)])
    enc = _Encoded(index=0, prompt=[5, 6, 7], prefix_len=0, trie=trie)
    dist = _distribution(enc, torch.full((3, 50), logp), cached=0)
    assert dist.coverage == 0.0
    assert dist.flag.startswith("coverage 0")


def test_mass_on_answers_is_coverage_and_renormalised() -> None:
    import torch

    from valuesim.llm.exact_scoring import _distribution, _Encoded

    trie = build_trie([(33, END), (34, END)])
    logp = torch.full((3, 50), -30.0, dtype=torch.float64)
    logp[0, 33], logp[0, 34] = np.log(0.3), np.log(0.1)  # after the prompt
    logp[1, END], logp[2, END] = np.log(0.5), np.log(1.0)  # end after "1", after "2"
    dist = _distribution(_Encoded(0, [5, 6, 7], 0, trie), logp, cached=0)
    assert dist.coverage == pytest.approx(0.3 * 0.5 + 0.1 * 1.0)
    assert dist.probs == pytest.approx((0.15 / 0.25, 0.10 / 0.25))
    assert not dist.flag

"""Turn what an API model returns into an answer distribution.

API providers cannot score arbitrary answer strings exactly; they return either the
top-k log-probabilities of each generated token, sampled replies, or (when asked) a
distribution written out as JSON. These pure functions map each of those onto the
admissible answers so that every provider plugin does it the same, documented way,
and record what the result measures in ``AnswerDistribution.answer_rule``.

Top-k first-token mapping (``from_top_logprobs``, rule ``answer_start``): it reads
``answer_start`` (README, "Answer probabilities"; ``valuesim.llm.exact_scoring``) as
closely as two positions of top-k allow. Exactly, P(answer) is P(the reply begins
with the answer's tokens) x (1 - P(the next token continues them into a longer
admissible answer)); "1" then ".", a newline or end-of-turn counts as 1, "1" then
"0" as 10.

* A candidate first token counts for an answer when, stripped of surrounding
  whitespace, it equals the answer or starts with it followed by a non-alphanumeric
  character (case-insensitively; a single token "1." counts as 1, the longest
  matching answer wins, as in :func:`parse_reply`). Variants such as ``" 1"`` and
  ``"1"`` are summed.
* Prefixes of longer answers: when a candidate ``t`` with mass p is a proper prefix
  of longer answers ("1" could start "10"; "1 " and "1." have ended and are not)
  and the model actually generated ``t`` first, the API reports the next position's top-k q. A longer answer then gets
  p x (sum of q over continuations that make it: "1" + "0" is 10), and the shorter
  answer gets p x (1 - sum of q over continuations that make *any* longer
  admissible answer): everything that does not extend it, tokens outside the top-k
  and inadmissible continuations ("1" + "5" on a 1-10 scale) included, exactly as
  the ``answer_start`` definition counts them. The observed split is applied to
  every variant of the generated token (``" 1"`` as ``"1"``).
* When the model generated something else first, the split was never observed: the
  prefix's whole mass goes to the shorter answer (an upper bound on it) and the
  longer answers are floored like any answer missing from the top-k. The same holds
  for a longer answer whose continuation is not in the next position's top-k (its
  mass then counts for the shorter answer).
* Answers missing from the top-k are *floored*, not zeroed: each gets a probability
  below the smallest observed top-k probability (its true value is at most that) and
  no larger than an even share of the unobserved mass; they are listed in
  ``AnswerDistribution.floored``.
* ``coverage`` is the observed mass on admissible answers (floors excluded).

How far this is from the exact rule (checked against the local model through a
wire-format fake server in ``plugins/valuesim-openai/tests/test_openai_matches_local.py``):
where the model spells answers the way its tokenizer does (its canonical
tokenisation, which models nearly always emit), every answer whose first token is in the top-k and that is no other
answer's prefix gets exactly its ``answer_start`` mass (up to the API's rounding of
log-probabilities); so does a prefix whose split was observed, and every longer
answer whose continuation is in the next top-k. The estimate differs only where mass
was not observed: a longer answer's mass moved to its prefix answer, an answer
missing from the top-k, and the floors. :func:`top_k_tv_bound` turns that into a
bound on the total-variation distance. The exact rule reads token ids, the estimate
reads text: a model that spells "10" as the tokens "1", "0" although its tokenizer
has a single "10" is read as 1 by the exact rule and as 10 here, and a single token
"1." counts as 1 here but not there. Answers that need more than the prefix and one
continuation token ("100" after "1", "0") are not observed either: "10" then gets
p x q as an upper bound and "100" is floored.

Sampled replies (``from_samples``, rule ``answer_start``): a reply counts for an
answer when it is the answer or starts with it followed by a non-alphanumeric
character (:func:`parse_reply`). Unlike the exact rule, which counts any
continuation that does not make a longer admissible answer, a reply "15" on a 1-10
scale counts for no answer here (it is not "1" followed by a separator): for integer
answers this is the local provider's ``leading_integer`` reading, which the API
providers do not offer for log-probabilities (it needs the next-token distribution
after every answer, not only after the prefixes of longer ones).

Verbalized distributions (``from_verbalized``) are what the model states; their
rule is :data:`~valuesim.llm.types.STATED`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from valuesim.errors import ProviderError
from valuesim.llm.types import STATED, AnswerDistribution, Estimator, ScoreRequest, Usage

#: Floors never go below this, so a floored answer is never exactly zero.
MIN_FLOOR = 1e-12
#: What the top-k and sampling estimates measure (README, "Answer probabilities").
RULE = "answer_start"


def _norm(text: str) -> str:
    return text.strip().casefold()


def check_answer_rule(provider: str, request: ScoreRequest, estimator: Estimator) -> None:
    """One-line ProviderError unless ``request`` asks for what ``estimator`` measures here.

    The engine refuses such configs before any request (``Capabilities.answer_rules``);
    this guards a provider called directly, so that it never answers a request for
    ``answer_eot`` with an ``answer_start`` distribution.
    """
    rule = request.decoding.answer_rule
    if rule is None or (rule == RULE and estimator != "verbalized"):
        return
    if estimator == "verbalized":
        raise ProviderError(
            f"{provider}: a verbalized distribution is stated by the model, so answer_rule "
            f"{rule!r} does not apply; remove answer_rule"
        )
    raise ProviderError(
        f"{provider}: the {estimator} estimator measures answer_start only, not answer_rule "
        f"{rule!r}; set answer_rule to one of: {RULE} (or remove it)"
    )


def prefix_answers(answers: Sequence[str]) -> tuple[str, ...]:
    """The admissible answers that are a proper string prefix of another one, in order.

    On a 1-10 scale that is ``("1",)``: "1" may still grow into "10", so scoring it
    exactly needs the next token's distribution after "1" (one more request to an API
    server; the local provider walks the same answer trie over token ids). Compared as
    written, without stripping or case-folding: the text is what the reply continues.
    """
    return _prefix_answers(tuple(answers))


@functools.lru_cache(maxsize=256)
def _prefix_answers(answers: tuple[str, ...]) -> tuple[str, ...]:
    # Memoized: server mode asks it several times per answer (quadratic in the answers),
    # for the few answer sets a study has; it was ~7% of the client's CPU per answer.
    return tuple(
        a for a in answers if any(len(b) > len(a) and b.startswith(a) for b in answers)
    )


def merge_logprobs(candidates: Iterable[tuple[str, float]]) -> dict[str, float]:
    """token -> log-probability from (token, log-probability) pairs of one top-k position.

    APIs list a token text more than once when different token ids decode to it; their
    probabilities add up.
    """
    merged: dict[str, float] = {}
    for tok, lp in candidates:
        merged[tok] = math.log(math.exp(merged[tok]) + math.exp(lp)) if tok in merged else lp
    return merged


def floor_unobserved(
    mass: list[float], observed: Sequence[bool], top_probs: Iterable[float], answers: Sequence[str]
) -> tuple[str, ...]:
    """Give each answer the top-k never showed a small positive floor, in place; return them.

    The floor is min(smallest top-k probability / 2, unobserved mass / number missing),
    never below ``MIN_FLOOR``: an answer outside the top-k is less likely than anything
    in it, and together the missing ones cannot hold more than the mass top-k left out.
    """
    missing = [i for i, seen in enumerate(observed) if not seen]
    if not missing:
        return ()
    probs = list(top_probs)
    smallest = min(probs, default=1.0)
    residual = max(0.0, 1.0 - sum(probs))
    floor = max(MIN_FLOOR, min(smallest / 2, residual / len(missing)))
    for i in missing:
        mass[i] = floor
    return tuple(answers[i] for i in missing)


def from_top_logprobs(
    first: Mapping[str, float],
    answers: Sequence[str],
    *,
    generated_first: str | None = None,
    following: Mapping[str, float] | None = None,
    usage: Usage | None = None,
    estimator: Estimator = "top_logprobs",
) -> AnswerDistribution:
    """Map first-token top-k log-probabilities onto ``answers`` (rule ``answer_start``).

    ``first`` maps each top-k token to its log-probability; when the same token text
    appears twice (byte-level variants), pass the merged value. ``generated_first``
    is the token the model actually produced at that position and ``following`` the
    top-k of the position after it, used to split a prefix such as ``"1"`` between
    ``"1"`` and ``"10"`` (see the module docstring).
    """
    norm_answers = [_norm(a) for a in answers]
    mass = [0.0] * len(answers)
    observed = [False] * len(answers)
    probs_first = {tok: math.exp(lp) for tok, lp in first.items()}
    for tok, p in probs_first.items():
        if not _norm(tok):
            continue
        short = parse_reply(tok, answers)  # the answer this token spells, if any
        # Answers this token may still grow into: "1" may become "10", but "1 " and
        # "1." have ended (leading whitespace does not matter, trailing does).
        t = tok.lstrip().casefold()
        longer = {i for i, a in enumerate(norm_answers) if len(a) > len(t) and a.startswith(t)}
        split = _split_prefix(tok, generated_first, following, answers, longer) if longer else None
        extended = 0.0
        if split is not None:
            for i, q in split.items():
                mass[i] += p * q
                observed[i] = True
            extended = sum(split.values())
        # Without an observed split (or without longer answers) nothing is taken away:
        # the whole mass counts for the shorter answer, the longer ones stay unobserved.
        if short is not None:
            mass[short] += p * max(0.0, 1.0 - extended)
            observed[short] = True
    coverage = sum(mass)
    floored = floor_unobserved(mass, observed, probs_first.values(), answers)
    total = sum(mass)
    flag = "" if coverage > 0 else "no admissible answer in the top-k"
    return AnswerDistribution(
        probs=tuple(m / total for m in mass),
        coverage=min(1.0, coverage),
        estimator=estimator,
        usage=usage or Usage(),
        floored=floored,
        flag=flag,
        answer_rule=RULE,
    )


def _split_prefix(
    raw_tok: str,
    generated_first: str | None,
    following: Mapping[str, float] | None,
    answers: Sequence[str],
    longer: set[int],
) -> dict[int, float] | None:
    """Next-token probability of each longer answer after the prefix ``raw_tok``.

    None when the split was not observed (the model generated something else first,
    so ``following`` is the top-k after another token). Longer answers no observed
    continuation makes are left out (unobserved).
    """
    if following is None or generated_first is None or _norm(generated_first) != _norm(raw_tok):
        return None
    shares: dict[int, float] = {}
    for nxt, lp in following.items():
        # "1" + "0" is 10, "1" + "0." too; "1" + "." is 1 and "1" + "5" no answer:
        # neither extends "1" into a longer admissible answer.
        i = parse_reply(raw_tok + nxt, answers)
        if i is not None and i in longer:
            shares[i] = shares.get(i, 0.0) + math.exp(lp)
    return shares


def top_k_tv_bound(
    estimate: AnswerDistribution, exact: AnswerDistribution, answers: Sequence[str]
) -> float:
    """Largest total-variation distance ``estimate`` (from :func:`from_top_logprobs`)
    can be from ``exact``, the ``answer_start`` distribution it estimates.

    Write m for the exact unnormalised masses (``probs x coverage``, summing to C)
    and u for the estimate's (observed masses plus floors, summing to U). Assume
    each answer is reached through one spelling only, the tokens its tokenizer uses
    for it, of at most two tokens, and that the top-k log-probabilities are exact.
    Then u = m except where mass was not observed (module docstring): the
    ``floored`` answers, with exact mass W and floors F in the estimate. Part V of W
    belongs to longer answers whose prefix split was not observed and was added to
    their shorter answer; the rest, D = W - V, is missing from the top-k altogether.
    So ``|u - m|_1 <= 2V + D + F`` and ``|U - C| = |F - D|``; for non-negative
    vectors ``|u/U - m/C|_1 <= (|u - m|_1 + |U - C|) / max(U, C)``, hence

        TV = |u/U - m/C|_1 / 2 <= (V + max(D, F)) / max(U, C) <= (W + F) / max(U, C),

    which is what this returns (at most 1). It is 0 when nothing was floored: then
    the two agree up to rounding. Providers cannot compute it (W needs the exact
    distribution); it is for checking the estimate against a local model.
    """
    if exact.answer_rule != RULE:
        raise ValueError(f"the top-k estimate reads answer_start, not {exact.answer_rule!r}")
    floored = set(estimate.floored)
    share = sum(p for a, p in zip(answers, estimate.probs, strict=True) if a in floored)
    if estimate.coverage <= 0 or share >= 1.0:
        return 1.0
    total = estimate.coverage / (1.0 - share)  # U: observed mass plus floors
    floors = total * share  # F
    unobserved = exact.coverage * sum(
        p for a, p in zip(answers, exact.probs, strict=True) if a in floored
    )  # W
    return min(1.0, (unobserved + floors) / max(total, exact.coverage))


def parse_reply(text: str, answers: Sequence[str]) -> int | None:
    """Index of the admissible answer a free-text reply gives, or None.

    The reply must be the answer, or start with it followed by a non-alphanumeric
    character ("7.", "7 - agree"); the longest match wins, so "10" is not read as "1".
    """
    reply = _norm(text)
    best: int | None = None
    for i, a in sorted(enumerate(answers), key=lambda ia: -len(ia[1])):
        na = _norm(a)
        if reply == na or (reply.startswith(na) and not reply[len(na) : len(na) + 1].isalnum()):
            best = i
            break
    return best


def from_samples(
    replies: Sequence[str], answers: Sequence[str], *, usage: Usage | None = None
) -> AnswerDistribution:
    """Empirical distribution of sampled replies; coverage is the share that parsed.

    Rule ``answer_start`` as far as text allows: a reply counts when it starts with
    the answer (:func:`parse_reply`), so "15" on a 1-10 scale counts for no answer.
    """
    counts = [0] * len(answers)
    for r in replies:
        i = parse_reply(r, answers)
        if i is not None:
            counts[i] += 1
    hits = sum(counts)
    n = max(1, len(replies))
    if hits == 0:
        return AnswerDistribution(
            probs=tuple(1.0 / len(answers) for _ in answers),
            coverage=0.0,
            estimator="sampling",
            usage=usage or Usage(),
            flag=f"no admissible answer in {len(replies)} samples",
            answer_rule=RULE,
        )
    return AnswerDistribution(
        probs=tuple(c / hits for c in counts),
        coverage=hits / n,
        estimator="sampling",
        usage=usage or Usage(),
        answer_rule=RULE,
    )


def verbalized_instruction(answers: Sequence[str]) -> str:
    """Replaces the single-answer instruction when the estimator is ``verbalized``."""
    keys = ", ".join(f'"{a}"' for a in answers)
    return (
        "Instead of a single answer, give the probability that you would choose each answer, "
        f"as one JSON object with exactly these keys: {keys}; the values are probabilities "
        "that sum to 1. Respond with ONLY the JSON object."
    )


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def from_verbalized(
    text: str, answers: Sequence[str], *, usage: Usage | None = None
) -> AnswerDistribution:
    """Parse a JSON distribution written by the model; flag the row when it is unusable.

    Coverage is the stated mass on admissible answers over all the stated mass, so a
    model that puts weight on keys outside the scale shows it. The rule is
    :data:`~valuesim.llm.types.STATED`: the probabilities are the model's own claim.
    """
    found = _JSON_OBJECT.search(text)
    stated: dict[str, float] = {}
    if found:
        try:
            raw = json.loads(found.group(0))
        except json.JSONDecodeError:
            raw = None
        if isinstance(raw, dict):
            for k, v in raw.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    stated[_norm(str(k))] = stated.get(_norm(str(k)), 0.0) + max(0.0, float(v))
    total_stated = sum(stated.values())
    mass = [stated.get(_norm(a), 0.0) for a in answers]
    if total_stated <= 0 or sum(mass) <= 0:
        return AnswerDistribution(
            probs=tuple(1.0 / len(answers) for _ in answers),
            coverage=0.0,
            estimator="verbalized",
            usage=usage or Usage(),
            flag="verbalized reply is not a JSON distribution over the answers",
            answer_rule=STATED,
        )
    return AnswerDistribution(
        probs=tuple(m / sum(mass) for m in mass),
        coverage=sum(mass) / total_stated,
        estimator="verbalized",
        usage=usage or Usage(),
        answer_rule=STATED,
    )

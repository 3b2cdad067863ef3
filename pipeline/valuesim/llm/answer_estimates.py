"""Turn what an API model returns into an answer distribution.

API providers cannot score arbitrary answer strings exactly; they return either the
top-k log-probabilities of each generated token, sampled replies, or (when asked) a
distribution written out as JSON. These pure functions map each of those onto the
admissible answers so that every provider plugin does it the same, documented way.

Top-k first-token mapping (``from_top_logprobs``):

* A candidate token counts for an answer when, stripped of surrounding whitespace,
  it equals the answer (case-insensitively); variants such as ``" 1"`` and ``"1"``
  are summed.
* Multi-token answers: when a candidate is a proper prefix of longer answers (``"1"``
  could start ``"10"``) the split between them is read from the *next* position's
  top-k, which the API reports for the token actually generated. That is exact when
  the generated first token is that prefix. When it is not, the split was never
  observed: the prefix's whole mass goes to the shorter answer (an upper bound) and
  the longer answers are floored like any answer missing from the top-k.
* Answers missing from the top-k are *floored*, not zeroed: each gets a probability
  below the smallest observed top-k probability (its true value is at most that) and
  no larger than an even share of the unobserved mass; they are listed in
  ``AnswerDistribution.floored``.
* ``coverage`` is the observed mass on admissible answers (floors excluded).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

from valuesim.llm.types import AnswerDistribution, Estimator, Usage

#: Floors never go below this, so a floored answer is never exactly zero.
MIN_FLOOR = 1e-12


def _norm(text: str) -> str:
    return text.strip().casefold()


def from_top_logprobs(
    first: Mapping[str, float],
    answers: Sequence[str],
    *,
    generated_first: str | None = None,
    following: Mapping[str, float] | None = None,
    usage: Usage | None = None,
    estimator: Estimator = "top_logprobs",
) -> AnswerDistribution:
    """Map first-token top-k log-probabilities onto ``answers``.

    ``first`` maps each top-k token to its log-probability; when the same token text
    appears twice (byte-level variants), pass the merged value. ``generated_first``
    is the token the model actually produced at that position and ``following`` the
    top-k of the position after it, used to split a prefix such as ``"1"`` between
    ``"1"`` and ``"10"``.
    """
    norm_answers = [_norm(a) for a in answers]
    mass = [0.0] * len(answers)
    observed = [False] * len(answers)
    probs_first = {tok: math.exp(lp) for tok, lp in first.items()}
    for tok, p in probs_first.items():
        t = _norm(tok)
        if not t:
            continue
        longer = [i for i, a in enumerate(norm_answers) if a != t and a.startswith(t)]
        exact = [i for i, a in enumerate(norm_answers) if a == t]
        if not longer:
            for i in exact:
                mass[i] += p
                observed[i] = True
            continue
        split = _split_prefix(t, tok, generated_first, following, norm_answers)
        if split is None:
            # The continuation was not observed: all mass to the shorter answer (if
            # admissible); the longer answers stay unobserved and get floored.
            for i in exact:
                mass[i] += p
                observed[i] = True
            continue
        for i, share in split.items():
            mass[i] += p * share
            observed[i] = True
    coverage = sum(mass)
    missing = [i for i, seen in enumerate(observed) if not seen]
    floored: list[str] = []
    if missing:
        smallest = min(probs_first.values(), default=1.0)
        residual = max(0.0, 1.0 - sum(probs_first.values()))
        floor = max(MIN_FLOOR, min(smallest / 2, residual / len(missing)))
        for i in missing:
            mass[i] = floor
            floored.append(answers[i])
    total = sum(mass)
    flag = "" if coverage > 0 else "no admissible answer in the top-k"
    return AnswerDistribution(
        probs=tuple(m / total for m in mass),
        coverage=min(1.0, coverage),
        estimator=estimator,
        usage=usage or Usage(),
        floored=tuple(floored),
        flag=flag,
    )


def _split_prefix(
    norm_tok: str,
    raw_tok: str,
    generated_first: str | None,
    following: Mapping[str, float] | None,
    norm_answers: Sequence[str],
) -> dict[int, float] | None:
    """Shares of a prefix token's mass per answer, from the next position's top-k."""
    if following is None or generated_first is None or _norm(generated_first) != norm_tok:
        return None
    shares: dict[int, float] = {}
    for nxt, lp in following.items():
        q = math.exp(lp)
        if nxt[:1].isalnum():
            # The answer continues: "1" + "0" is "10" (or an inadmissible "15").
            cont = _norm(raw_tok + nxt)
            target = [i for i, a in enumerate(norm_answers) if a == cont]
        else:
            # Whitespace, punctuation or end of text end the answer at the prefix.
            target = [i for i, a in enumerate(norm_answers) if a == norm_tok]
        for i in target:
            shares[i] = shares.get(i, 0.0) + q
    return shares


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
    """Empirical distribution of sampled replies; coverage is the share that parsed."""
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
        )
    return AnswerDistribution(
        probs=tuple(c / hits for c in counts),
        coverage=hits / n,
        estimator="sampling",
        usage=usage or Usage(),
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
    model that puts weight on keys outside the scale shows it.
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
        )
    return AnswerDistribution(
        probs=tuple(m / sum(mass) for m in mass),
        coverage=sum(mass) / total_stated,
        estimator="verbalized",
        usage=usage or Usage(),
    )

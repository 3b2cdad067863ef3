"""Exact ``answer_start`` distributions from a server's first token and prefix continuations.

``server: vllm`` / ``sglang`` (README of this plugin, "Server mode"): the ordinary
chat request gives the top-k of the reply's first token; for every admissible answer
that is a proper prefix of another ("1" of "10", :func:`prefix_answers`), one more
request continues the assistant turn with it and gives the top-k of the token after
it. Then, by the ``answer_start`` rule (the reply begins with the answer and the next
token does not continue it into a longer admissible answer):

    P("10") = P(reply starts "1") x P(next "0" | "1")
    P("1")  = P(reply starts "1") x (1 - P(next token makes a longer answer | "1"))

applied down the answer trie ("10" of "100" is split after "10" the same way), with
"making a longer answer" read as text exactly as :func:`from_top_logprobs` reads it
("1" + "0" and "1" + "0." are 10; "1" + "." is 1; "1" + "5" on a 1-10 scale is no
answer and so counts for 1). Nothing is moved or floored that was observed; what
the top-k leaves out is floored as in :func:`from_top_logprobs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from valuesim import AnswerDistribution, Usage
from valuesim.llm.answer_estimates import RULE, floor_unobserved, parse_reply, prefix_answers


def continuation_prefixes(
    first: Mapping[str, float], answers: Sequence[str]
) -> dict[str, str]:
    """Prefix answer -> the reply text to continue with, for those the first top-k reaches.

    The text is the most probable first-token spelling of the answer (``"1"`` or
    ``" 1"``): the server then continues the path the model itself takes. Deeper
    prefixes ("10" of "100") are added by :func:`extend_prefixes` once the shorter
    one's continuation is known.
    """
    keys = {a.casefold(): a for a in prefix_answers(answers)}
    out: dict[str, str] = {}
    for tok, _ in sorted(first.items(), key=lambda kv: -kv[1]):
        a = keys.get(tok.lstrip().casefold())
        if a is not None and a not in out:
            out[a] = tok
    return out


def extend_prefixes(
    reach: dict[str, str], answer: str, following: Mapping[str, float], answers: Sequence[str]
) -> None:
    """Add the longer prefix answers reached from ``answer`` by one token of ``following``."""
    keys = {a.casefold(): a for a in prefix_answers(answers)}
    base = reach[answer]
    for tok, _ in sorted(following.items(), key=lambda kv: -kv[1]):
        a = keys.get((base.lstrip() + tok).casefold())
        if a is not None and len(a) > len(answer) and a not in reach:
            reach[a] = base + tok


def from_prefix_continuations(
    first: Mapping[str, float],
    following: Mapping[str, Mapping[str, float]],
    answers: Sequence[str],
    *,
    usage: Usage | None = None,
) -> AnswerDistribution:
    """The ``answer_start`` distribution (estimator ``logprobs``) from top-k log-probabilities.

    ``first``: the reply's first token (token text -> log-probability, merged);
    ``following``: for each prefix answer that was continued, the next token's.
    A prefix answer without a continuation (it was not in the first top-k) keeps
    the whole of its observed mass and its longer answers stay unobserved, as in
    :func:`from_top_logprobs`.
    """
    keys = {a.casefold(): a for a in prefix_answers(answers)}
    index = {a: i for i, a in enumerate(answers)}
    mass = [0.0] * len(answers)
    observed = [False] * len(answers)

    def walk(text: str, p: float) -> None:
        reply = text.lstrip()
        prefix = keys.get(reply.casefold())
        nxt = following.get(prefix) if prefix is not None else None
        if prefix is not None and nxt is not None:
            extended = 0.0
            for tok, lp in nxt.items():
                longer = parse_reply(reply + tok, answers)
                if longer is not None and len(answers[longer]) > len(prefix):
                    q = math.exp(lp)
                    extended += q
                    walk(reply + tok, p * q)
            mass[index[prefix]] += p * max(0.0, 1.0 - extended)
            observed[index[prefix]] = True
            return
        i = parse_reply(reply, answers)
        if i is not None:
            mass[i] += p
            observed[i] = True

    probs_first = {tok: math.exp(lp) for tok, lp in first.items()}
    for tok, p in probs_first.items():
        if tok.strip():
            walk(tok, p)
    coverage = sum(mass)
    floored = floor_unobserved(mass, observed, probs_first.values(), answers)
    total = sum(mass)
    return AnswerDistribution(
        probs=tuple(m / total for m in mass),
        coverage=min(1.0, coverage),
        estimator="logprobs",
        usage=usage or Usage(),
        floored=floored,
        flag="" if coverage > 0 else "no admissible answer in the top-k",
        answer_rule=RULE,
    )

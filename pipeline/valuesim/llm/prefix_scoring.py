"""Exact ``answer_start`` distributions from a server's first token and prefix continuations.

The answer-rule arithmetic of server mode (the openai plugin's ``server: vllm`` /
``sglang``, docs "Server mode"), beside :mod:`valuesim.llm.answer_estimates`; the
plugin only speaks the wire format. Two readings of the same requests:

**By token id** (:func:`answer_token_trie`, :func:`slot_token_ids`,
:func:`from_token_logprobs`), where the server returns the log-probabilities of
chosen token ids at the generated position (vLLM's ``logprob_token_ids``): the
answers' own token sequences, as the model's tokenizer spells them, are read
exactly as the local engine reads them (:func:`valuesim.llm.exact_scoring.build_trie`
and :func:`~valuesim.llm.exact_scoring.answer_logprobs`, rule ``answer_start``):
one request for the first token of every answer, and one per trie context (the
answer "1" that may still grow into "10": the continuing digits after it). Nothing
is ranked, so nothing is floored, whatever the server's ``--max-logprobs``.

**By top-k text** (:func:`continuation_prefixes`, :func:`extend_prefixes`,
:func:`from_prefix_continuations`), for servers without that field: the ordinary
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
from dataclasses import replace

import numpy as np

from valuesim.errors import ProviderError
from valuesim.llm.answer_estimates import RULE, floor_unobserved, parse_reply, prefix_answers
from valuesim.llm.exact_scoring import AnswerTrie, answer_logprobs, build_trie
from valuesim.llm.types import AnswerDistribution, Usage

#: The most token ids vLLM reads at one position (``MAX_LOGPROB_TOKEN_IDS`` in
#: vllm/sampling_params.py, vllm-project/vllm@00388f6573ccfcffad607b8c9ecdf341a4669ceb).
MAX_TOKEN_IDS = 128


def answer_token_trie(sequences: Sequence[Sequence[int]]) -> AnswerTrie:
    """The ``answer_start`` trie of the answers' token ids (each answer's tokens as the
    model spells it, without the end of turn), as the local engine builds it."""
    seqs = [tuple(q) for q in sequences]
    if any(not q for q in seqs) or len(set(seqs)) != len(seqs):
        raise ProviderError(
            "the answers tokenise to empty or identical token sequences on this server; "
            "make them distinct non-empty strings"
        )
    return build_trie(seqs, RULE)


def slot_token_ids(trie: AnswerTrie) -> list[tuple[int, ...]]:
    """For slot 0 (after the prompt) and after each of ``trie.contexts``: the token ids
    whose log-probabilities the answers need there (their next tokens, and the tokens
    that would continue an answer into a longer one)."""
    wanted: list[set[int]] = [set() for _ in range(len(trie.contexts) + 1)]
    for steps in trie.steps:
        for slot, tok in steps:
            wanted[slot].add(tok)
    for slot, nxt in trie.stops:
        if nxt:
            wanted[slot].update(nxt)
    return [tuple(sorted(w)) for w in wanted]


def from_token_logprobs(
    trie: AnswerTrie,
    logprobs: Sequence[Mapping[int, float]],
    *,
    usage: Usage | None = None,
) -> AnswerDistribution:
    """The ``answer_start`` distribution (estimator ``logprobs``) from the log-probability
    of each token id of :func:`slot_token_ids`, one mapping per slot.

    The arithmetic is the local engine's (:func:`~valuesim.llm.exact_scoring.answer_logprobs`),
    on a table of the asked ids only; a missing id is a ProviderError, never a zero.
    """
    ids = sorted({t for slot in logprobs for t in slot})
    column = {t: i for i, t in enumerate(ids)}
    table = np.full((len(trie.contexts) + 1, max(len(ids), 1)), -np.inf)
    for slot, wanted in enumerate(slot_token_ids(trie)):
        got = logprobs[slot] if slot < len(logprobs) else {}
        missing = [t for t in wanted if t not in got]
        if missing:
            raise ProviderError(
                f"the server gave no log-probability for token id {missing[0]} at position "
                f"{slot} of the answers; it does not honour logprob_token_ids"
            )
        for t in wanted:
            table[slot, column[t]] = got[t]
    compact = replace(
        trie,
        steps=tuple(tuple((s, column[t]) for s, t in steps) for steps in trie.steps),
        stops=tuple((s, tuple(column[t] for t in nxt)) for s, nxt in trie.stops),
    )
    per_answer, coverage = answer_logprobs(compact, table)
    top = per_answer.max()
    if not np.isfinite(top):  # as the local engine reports it
        return AnswerDistribution(
            probs=tuple([math.nan] * len(trie.steps)),
            coverage=0.0,
            estimator="logprobs",
            usage=usage or Usage(),
            flag="coverage 0: no probability on any admissible answer",
            answer_rule=RULE,
        )
    probs = np.exp(per_answer - top)
    probs /= probs.sum()  # in log space first: no underflow
    return AnswerDistribution(
        probs=tuple(float(x) for x in probs),
        coverage=coverage,
        estimator="logprobs",
        usage=usage or Usage(),
        answer_rule=RULE,
    )


def continuation_prefixes(first: Mapping[str, float], answers: Sequence[str]) -> dict[str, str]:
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

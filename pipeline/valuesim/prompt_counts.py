"""What a plan counts of one method's prompts: requests, unique prompts, estimated
prompt tokens and exact prefix splits, counted from the prompts' parts.

A method's prompts are heads (a persona's or country's system message) times rows (the
questions' other messages and answers), and most heads share one row object
(:func:`valuesim.prompts.prompt_parts`). The counts are sums over heads of sums over
rows, so they are computed once per distinct row set and per head length, not once per
prompt: a paper-scale method has a million prompts but some twenty thousand heads and a
row or two. The numbers are the ones the materialized prompts give (a test compares
them on every method, rotated items and map prompts included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from valuesim.llm.types import ChatMessage

#: Estimated characters per token for models without a local tokenizer.
CHARS_PER_TOKEN = 4.0

Prompt = tuple[tuple[ChatMessage, ...], tuple[str, ...]]
#: A head's prompts after its system message: (the other messages, answers) each.
Row = Sequence[tuple[tuple[ChatMessage, ...], tuple[str, ...]]]
#: A system message and its row; heads with equal rows should pass the same row object.
Block = tuple[ChatMessage, Row]


@dataclass(frozen=True)
class MethodCounts:
    """One (stage, method)'s prompts, whatever the model."""

    requests: int  # map-item prompts included
    map_requests: int
    unique: int  # identical prompts are sent once
    estimated_tokens: int  # of the unique prompts: characters / CHARS_PER_TOKEN
    split_requests: int  # extra requests when every unique prompt splits its prefix answers
    split_tokens: int  # their estimated prompt tokens


@dataclass(frozen=True)
class SendCounts:
    """What one model of a (stage, method) still has to send."""

    cached: int  # requests whose answer is in the response cache
    to_send: int  # unique requests not cached
    prompt_tokens: int  # of those to send
    tokens_counted: str  # "tokenizer" or "estimate"
    split_requests: int
    split_tokens: int


@cache
def prefix_count(answers: tuple[str, ...]) -> int:
    """Answers that are a proper prefix of another ("1" of 1-10): one more request each
    for a server that splits them (:func:`valuesim.llm.answer_estimates.prefix_answers`)."""
    from valuesim.llm.answer_estimates import prefix_answers

    return len(prefix_answers(answers))


def estimated_tokens(chars: int) -> int:
    return round(chars / CHARS_PER_TOKEN)


def split_request_tokens(chars: int) -> int:
    """The estimated tokens of one split request: the prompt again, continued by the
    prefix (the server's prefix cache serves most of it; priced here in full)."""
    return round(chars / CHARS_PER_TOKEN) + 1


def _chars(messages: Iterable[ChatMessage]) -> int:
    return sum(len(m.content) for m in messages)


@dataclass(frozen=True)
class _RowSet:
    """The distinct (other messages, answers) of one head's rows, summed."""

    prompts: int
    chars: int  # of the messages after the system message
    splits: Counter[tuple[int, int]]  # (prefix answers, chars) -> prompts with them
    split_requests: int


def _row_set(rows: Iterable[Row]) -> _RowSet:
    union = dict.fromkeys(p for row in rows for p in row)
    splits: Counter[tuple[int, int]] = Counter()
    chars = 0
    for tail, answers in union:
        n = _chars(tail)
        chars += n
        if k := prefix_count(answers):
            splits[k, n] += 1
    return _RowSet(len(union), chars, splits, sum(k * m for (k, _), m in splits.items()))


def counts_from_blocks(blocks: Iterable[Block], map_requests: int = 0) -> MethodCounts:
    """The counts of every ``(system, *other messages), answers`` prompt of ``blocks``."""
    rows: dict[int, Row] = {}
    heads: dict[ChatMessage, list[int]] = {}
    requests = 0
    for head, row in blocks:
        rid = id(row)
        rows[rid] = row
        requests += len(row)
        ids = heads.get(head)
        if ids is None:
            heads[head] = [rid]
        elif rid not in ids:
            ids.append(rid)
    # prompts with one system message are unique by their rows' distinct (other
    # messages, answers): one set per combination of rows, one sum per head length
    sets: dict[frozenset[int], _RowSet] = {}
    groups: Counter[tuple[int, frozenset[int]]] = Counter()
    for head, ids in heads.items():
        key = frozenset(ids)
        if key not in sets:
            sets[key] = _row_set(rows[i] for i in ids)
        groups[len(head.content), key] += 1
    unique = chars = extra = split_tokens = 0
    for (length, key), n in groups.items():
        s = sets[key]
        unique += n * s.prompts
        chars += n * (s.prompts * length + s.chars)
        extra += n * s.split_requests
        split_tokens += n * sum(k * m * split_request_tokens(length + tail)
                                for (k, tail), m in s.splits.items())
    return MethodCounts(requests, map_requests, unique, estimated_tokens(chars), extra, split_tokens)


def counts_from_prompts(prompts: Sequence[Prompt], map_requests: int = 0) -> MethodCounts:
    """The counts of a list of prompts (other stages' requests, ``valuesim ask``)."""
    unique = list(dict.fromkeys(prompts))
    extra, tokens = prefix_splits(unique)
    return MethodCounts(len(prompts), map_requests, len(unique), prompts_tokens(unique), extra, tokens)


def prompts_tokens(prompts: Iterable[Prompt]) -> int:
    """Estimated prompt tokens of ``prompts``: their message characters / CHARS_PER_TOKEN."""
    return estimated_tokens(sum(_chars(messages) for messages, _ in prompts))


def prefix_splits(prompts: Iterable[Prompt]) -> tuple[int, int]:
    """(extra requests, their prompt tokens) when every prompt splits its prefix answers:
    one more request per answer that is a proper prefix of another."""
    extra = tokens = 0
    for messages, answers in prompts:
        if k := prefix_count(answers):
            extra += k
            tokens += k * split_request_tokens(_chars(messages))
    return extra, tokens


def unique_prompts(blocks: Iterable[Block]) -> tuple[list[Prompt], list[int]]:
    """Every distinct prompt of ``blocks`` and how many requests ask it, in first-seen
    order, found per head and row (a row's entries are compared once, not each prompt:
    hashing millions of message tuples was most of a lookup's time after the keys)."""
    rows: dict[int, Counter[tuple[tuple[ChatMessage, ...], tuple[str, ...]]]] = {}
    heads: dict[ChatMessage, Counter[int]] = {}
    for head, row in blocks:
        rid = id(row)
        if rid not in rows:
            rows[rid] = Counter(row)
        if (seen := heads.get(head)) is None:
            seen = heads[head] = Counter()
        seen[rid] += 1
    prompts: list[Prompt] = []
    counts: list[int] = []
    for head, ids in heads.items():
        if len(ids) == 1:
            ((rid, n),) = ids.items()
            entries: Iterable[tuple[tuple[tuple[ChatMessage, ...], tuple[str, ...]], int]] = (
                (entry, n * m) for entry, m in rows[rid].items())
        else:  # one head in several rows (targets and map items, or rotations)
            merged: Counter[tuple[tuple[ChatMessage, ...], tuple[str, ...]]] = Counter()
            for rid, n in ids.items():
                for entry, m in rows[rid].items():
                    merged[entry] += n * m
            entries = merged.items()
        for (tail, answers), m in entries:
            prompts.append(((head, *tail), answers))
            counts.append(m)
    return prompts, counts

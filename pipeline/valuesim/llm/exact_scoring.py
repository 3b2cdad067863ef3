"""Exact answer probabilities from a local model, batched and with prefix reuse.

What P(answer) measures is the request's answer rule (README, "Answer
probabilities"), all read from the same forward pass:

- ``answer_start`` (default): the reply begins with the answer's tokens and the
  next token does not continue them into a longer admissible answer:
  P(tokens) x (1 - P(next token extends it)). On a 1-10 scale "1" then "." or
  end-of-turn counts as 1, "1" then "0" as 10, and "1" then "5" (a reply "15",
  which is no admissible answer) also counts as 1: only continuations into a
  longer *admissible* answer are taken away.
- ``leading_integer``: as ``answer_start``, and an answer that ends in a digit also
  loses every next token that begins with a digit, so it counts only when the
  reply's whole leading integer is that answer: "15" is no answer on a 1-10 scale;
  "1.", "1 " and "1" then end-of-turn count as 1. The digit tokens are read off the
  vocabulary (:func:`digit_tokens`).
- ``answer_eot``: the reply is the answer and then ends: P(tokens) x P(end-of-turn).
- ``first_token``: P(the answer's first token) alone.

How the work is shared:
- Requests are grouped by their prompt prefix up to the start of the last user
  message (the persona's system message). That prefix is encoded once (batch 1);
  its key/value cache is reused, unchanged, for every question of the persona and
  kept in a small LRU across calls.
- Each question becomes one row: its own tokens, then the nodes of the answer
  trie (token sequences of all answers, sharing common prefixes) appended behind
  it. A 4-D attention mask lets each trie node see the prompt and its ancestors
  only, with position ids set to its depth, so one forward pass yields every
  distribution the answers need: after the prompt, and after each answer prefix.
- Rows of one persona are sorted longest first and padded into batches; a batch
  ends where the next row is more than :data:`SPLIT_SHORTER` shorter than its first
  (or at ``max_batch_tokens`` padded tokens), so rows of very different lengths do
  not pay for each other's padding. The vocabulary projection and log-softmax run
  only at the positions whose distribution is used, in fp32.
- Attention reads the model's shared key/value heads in place (grouped-query
  attention inside SDPA, :mod:`valuesim.llm.gqa_attention`) instead of copying them
  per query head.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from valuesim.errors import ProviderError
from valuesim.llm.types import (
    ANSWER_RULES,
    AnswerDistribution,
    AnswerRule,
    ChatMessage,
    ScoreRequest,
    Usage,
)

if TYPE_CHECKING:
    import torch

    from valuesim.llm.local_model import LoadedModel


@dataclass(frozen=True)
class AnswerTrie:
    """How to read each answer's probability off next-token distributions.

    ``contexts`` are the non-empty token prefixes that need a next-token
    distribution (parents before children). Slot 0 is "right after the prompt", slot
    i+1 is "after contexts[i]". For answer ``a``: ``steps[a]`` lists (slot, token)
    pairs whose probabilities multiply; ``stops[a]`` is (slot, tokens) whose total
    probability is then taken away (the tokens that would continue the answer into
    a longer admissible one; slot -1 and no tokens when there are none).
    ``first`` holds each answer's first token (coverage of ``first_token`` counts a
    token shared by several answers once). Under ``leading_integer`` the stop tokens
    also hold every token that begins with a digit, for answers that end in one.
    """

    sequences: tuple[tuple[int, ...], ...]
    contexts: tuple[tuple[int, ...], ...]
    steps: tuple[tuple[tuple[int, int], ...], ...]
    ancestors: np.ndarray  # bool [C, C]: contexts[j] is a prefix of (or is) contexts[i]
    stops: tuple[tuple[int, tuple[int, ...]], ...] = ()
    rule: AnswerRule = "answer_eot"


def build_trie(
    sequences: Sequence[tuple[int, ...]],
    rule: AnswerRule = "answer_eot",
    end: int | None = None,
    *,
    digits: Collection[int] = (),
    numeric: Sequence[bool] | None = None,
) -> AnswerTrie:
    """The trie of ``sequences`` (answer tokens, without any end-of-turn token) read
    under ``rule``; ``answer_eot`` appends ``end`` to every sequence.

    ``leading_integer`` needs ``digits``, the token ids that begin with a digit
    (:func:`digit_tokens`), and ``numeric``, whether each answer ends in a digit
    (all of them when None); such an answer also stops at any of ``digits``.

    For backward compatibility, ``answer_eot`` without ``end`` takes the sequences
    as already ending with their end-of-turn token.
    """
    seqs = [tuple(q) for q in sequences]
    if rule == "answer_eot" and end is not None:
        seqs = [(*q, end) for q in seqs]
    if rule == "first_token":
        seqs = [q[:1] for q in seqs]
    if rule == "leading_integer" and not digits:
        raise ValueError("the leading_integer rule needs the vocabulary's digit tokens")
    ends_in_digit = [True] * len(seqs) if numeric is None else list(numeric)
    stop_tokens: list[tuple[int, ...]] = []
    if rule in ("answer_start", "leading_integer"):
        for q, digit in zip(seqs, ends_in_digit, strict=True):
            nxt = {o[len(q)] for o in seqs if len(o) > len(q) and o[: len(q)] == q}
            if rule == "leading_integer" and digit:
                nxt |= set(digits)
            stop_tokens.append(tuple(sorted(nxt)))
    ctx_index: dict[tuple[int, ...], int] = {}
    for seq in seqs:
        for k in range(1, len(seq)):
            ctx_index.setdefault(seq[:k], len(ctx_index))
    for seq, nxt in zip(seqs, stop_tokens, strict=False):
        if nxt:
            ctx_index.setdefault(seq, len(ctx_index))
    # parents before children, whatever order the answers came in
    contexts = tuple(sorted(ctx_index, key=lambda c: (len(c), ctx_index[c])))
    ctx_index = {c: i for i, c in enumerate(contexts)}
    steps = tuple(
        tuple((0 if k == 0 else ctx_index[seq[:k]] + 1, seq[k]) for k in range(len(seq)))
        for seq in seqs
    )
    stops = tuple(
        (ctx_index[seq] + 1, nxt) if nxt else (-1, ())
        for seq, nxt in zip(seqs, stop_tokens or [()] * len(seqs), strict=True)
    )
    c = len(contexts)
    anc = np.zeros((c, c), dtype=bool)
    for i, ci in enumerate(contexts):
        for j, cj in enumerate(contexts):
            anc[i, j] = len(cj) <= len(ci) and ci[: len(cj)] == cj
    return AnswerTrie(tuple(seqs), contexts, steps, anc, stops, rule)


def _render(tok: Any, messages: Sequence[ChatMessage], *, generation_prompt: bool) -> str:
    return tok.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def _ids(tok: Any, text: str) -> list[int]:
    # The chat template already spells out every special token it wants.
    return list(tok(text, add_special_tokens=False)["input_ids"])


def prompt_token_ids(tok: Any, messages: Sequence[ChatMessage]) -> list[int]:
    """The token ids of a prompt as it is scored: the chat template with the
    generation prompt (what a request's ``usage.prompt_tokens`` counts)."""
    return _ids(tok, _render(tok, messages, generation_prompt=True))


def digit_tokens(tok: Any) -> frozenset[int]:
    """Ids of the tokens whose text begins with an ASCII digit ("5", "05", "1st"; not
    " 5"): the next tokens that would make a reply's leading integer longer."""
    key = id(tok)
    if key not in _DIGIT_TOKENS:
        texts = tok.batch_decode([[t] for t in range(len(tok))])
        _DIGIT_TOKENS[key] = (
            tok,
            frozenset(t for t, text in enumerate(texts) if text[:1].isascii() and text[:1].isdigit()),
        )
    return _DIGIT_TOKENS[key][1]


# id(tokenizer) -> (tokenizer, its digit tokens); the tokenizer is kept so its id stays its own
_DIGIT_TOKENS: dict[int, tuple[Any, frozenset[int]]] = {}


def answer_trie(
    lm: LoadedModel,
    messages: Sequence[ChatMessage],
    answers: Sequence[str],
    rule: AnswerRule = "answer_eot",
) -> AnswerTrie:
    """Tokenise each answer as the model would emit it (read from the rendered
    assistant turn, up to its end-of-turn token) and build the trie for ``rule``."""
    tok = lm.tokenizer
    if not answers:
        raise ProviderError("a request has no admissible answers; give at least one")
    if len(set(answers)) != len(answers):
        raise ProviderError(f"duplicate admissible answers {list(answers)}; make them distinct")
    prompt = _render(tok, messages, generation_prompt=True)
    seqs: list[tuple[int, ...]] = []
    end_token: int | None = None
    for ans in answers:
        if not ans.strip():
            raise ProviderError("an admissible answer is empty; answers must be non-empty strings")
        full = _render(tok, [*messages, ChatMessage("assistant", ans)], generation_prompt=False)
        if not full.startswith(prompt):
            raise ProviderError(
                f"the chat template of {lm.name!r} renders the assistant turn inconsistently; "
                "use a model whose template appends replies after the generation prompt"
            )
        ids = _ids(tok, full[len(prompt) :])
        end = next((k for k, t in enumerate(ids) if t in lm.end_token_ids), None)
        if end is None:
            raise ProviderError(
                f"the chat template of {lm.name!r} has no end-of-turn token after a reply; "
                "exact answer scoring needs one"
            )
        seq = tuple(ids[:end])
        end_token = ids[end]
        spelled = tok.decode(list(seq))
        if (tok.unk_token_id is not None and tok.unk_token_id in seq) or spelled.strip() != ans.strip():
            raise ProviderError(
                f"the tokenizer of {lm.name!r} cannot express the answer {ans!r} "
                f"(it reads back as {spelled!r}); use answers made of characters it knows"
            )
        seqs.append(seq)
    if len(set(seqs)) != len(seqs) or any(not q for q in seqs):
        raise ProviderError(f"answers {list(answers)} tokenise identically; make them distinct")
    if rule == "leading_integer":
        numeric = [a.strip()[-1:].isascii() and a.strip()[-1:].isdigit() for a in answers]
        return build_trie(seqs, rule, end_token, digits=digit_tokens(tok), numeric=numeric)
    return build_trie(seqs, rule, end_token)


@dataclass
class _Encoded:
    index: int
    prompt: list[int]
    prefix_len: int
    trie: AnswerTrie


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def encode(lm: LoadedModel, requests: Sequence[ScoreRequest]) -> list[_Encoded]:
    """Token ids of each prompt, its shareable prefix length and its answer trie."""
    tok = lm.tokenizer
    tries: dict[tuple[tuple[str, ...], str], AnswerTrie] = {}
    head_len: dict[tuple[ChatMessage, ...], int] = {}
    out: list[_Encoded] = []
    for i, req in enumerate(requests):
        if req.decoding.estimator not in (None, "logprobs"):
            raise ProviderError(
                f"the transformers provider scores answers exactly (estimator logprobs), "
                f"not {req.decoding.estimator!r}; drop the estimator setting for this model"
            )
        if not req.messages or req.messages[-1].role != "user":
            raise ProviderError("a request must end with a user message")
        rule: AnswerRule = req.decoding.answer_rule or "answer_start"
        if rule not in ANSWER_RULES:
            raise ProviderError(f"unknown answer_rule {rule!r}; choose one of: {', '.join(ANSWER_RULES)}")
        if (req.answers, rule) not in tries:
            tries[(req.answers, rule)] = answer_trie(lm, req.messages, req.answers, rule)
        prompt = prompt_token_ids(tok, req.messages)
        head = req.messages[:-1]
        if head not in head_len:
            # The shareable prefix: everything before the last user message's text,
            # found by rendering the same conversation with that text left empty.
            probe = [*head, ChatMessage("user", "")]
            head_len[head] = _common_prefix_len(
                prompt, _ids(tok, _render(tok, probe, generation_prompt=True))
            )
        # keep at least one prompt token in the row: its output is P(first answer token)
        out.append(
            _Encoded(i, prompt, min(head_len[head], len(prompt) - 1), tries[(req.answers, rule)])
        )
    return out


class PrefixCache:
    """Key/value states of recently used prompt prefixes (batch 1), by token ids."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = (
            OrderedDict()
        )

    def clear(self) -> None:
        self._items.clear()

    def get(self, lm: LoadedModel, prefix: tuple[int, ...]) -> tuple[list[Any], bool]:
        if prefix in self._items:
            self._items.move_to_end(prefix)
            return self._items[prefix], True
        kv = _encode_prefix(lm, prefix)
        self._items[prefix] = kv
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return kv, False


def _encode_prefix(lm: LoadedModel, prefix: tuple[int, ...]) -> list[Any]:
    import torch
    from transformers import DynamicCache

    if not prefix:
        return []
    ids = torch.tensor([prefix], device=lm.device)
    cache = DynamicCache(config=lm.model.config)
    lm.model.base_model(input_ids=ids, use_cache=True, **_cache_kwarg(lm, cache))
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache_kwarg(lm: LoadedModel, cache: Any) -> dict[str, Any]:
    # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns)
    params = inspect.signature(lm.model.base_model.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


@dataclass
class _Row:
    enc: _Encoded
    tokens: list[int]
    positions: list[int]
    mask: np.ndarray  # bool [L, L] within the row
    needed: list[int]  # row offsets whose next-token distribution is used (slot order)


def _make_row(enc: _Encoded) -> _Row:
    p = enc.prefix_len
    suffix = enc.prompt[p:]
    s = len(suffix)
    trie = enc.trie
    c = len(trie.contexts)
    n = s + c
    mask = np.zeros((n, n), dtype=bool)
    mask[:s, :s] = np.tril(np.ones((s, s), dtype=bool))
    mask[s:, :s] = True
    mask[s:, s:] = trie.ancestors
    tokens = suffix + [ctx[-1] for ctx in trie.contexts]
    positions = list(range(p, p + s)) + [p + s - 1 + len(ctx) for ctx in trie.contexts]
    return _Row(enc, tokens, positions, mask, [s - 1, *range(s, n)])


@dataclass
class ForwardStats:
    """What the forward passes of :func:`score_requests` computed, added up over calls
    (the bench's padding share and FLOP count read it)."""

    batches: int = 0  # padded forward passes over rows
    row_tokens: int = 0  # real tokens in rows: each question's own tokens and trie nodes
    padded_tokens: int = 0  # padding positions forwarded beside them
    prefix_tokens: int = 0  # tokens of prompt prefixes encoded (cache misses only)
    attended: int = 0  # (query, key) pairs the masks let real tokens attend, prefixes included
    head_positions: int = 0  # positions projected onto the vocabulary

    @property
    def padding_share(self) -> float:
        """Padded row tokens / forwarded row tokens (0 when nothing was forwarded)."""
        forwarded = self.row_tokens + self.padded_tokens
        return self.padded_tokens / forwarded if forwarded else 0.0


#: A batch ends where the next row (rows go longest first) is more than this share
#: shorter than the batch's first row, which sets the batch's width: rows much
#: shorter than the width would mostly forward padding. Measured on the default
#: study: 24.6% of the forwarded row tokens were padding when batches were filled by
#: the token budget alone, and splitting at 10% took 1.23x less CPU (issue 25).
SPLIT_SHORTER = 0.10


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, split_shorter: float | None) -> list[range]:
    """Consecutive batches over rows of ``lengths`` (sorted longest first).

    A batch holds at most ``max_batch_tokens // width`` rows (the padded token
    budget; at least one row), its width being its first row's length. With
    ``split_shorter`` it also ends before the first row shorter than
    ``(1 - split_shorter) * width``; None fills each batch by the budget alone.
    """
    out: list[range] = []
    start = 0
    while start < len(lengths):
        width = lengths[start]
        end = min(len(lengths), start + max(1, max_batch_tokens // width))
        if split_shorter is not None:
            floor = (1.0 - split_shorter) * width
            stop = start + 1
            while stop < end and lengths[stop] >= floor:
                stop += 1
            end = stop
        out.append(range(start, end))
        start = end
    return out


def _forward_rows(
    lm: LoadedModel, rows: Sequence[_Row], prefix_kv: list[Any], p: int, stats: ForwardStats | None = None
) -> list[Any]:
    """One padded forward over rows sharing a prefix; log-probs at each row's needed offsets."""
    import torch
    from transformers import DynamicCache

    b = len(rows)
    width = max(len(r.tokens) for r in rows)
    if stats is not None:
        real = sum(len(r.tokens) for r in rows)
        stats.batches += 1
        stats.row_tokens += real
        stats.padded_tokens += b * width - real
        stats.attended += p * real + sum(int(r.mask.sum()) for r in rows)
        stats.head_positions += sum(len(r.needed) for r in rows)
    ids = torch.zeros((b, width), dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    allowed = torch.zeros((b, 1, width, p + width), dtype=torch.bool)
    allowed[:, :, :, :p] = True
    for i, r in enumerate(rows):
        n = len(r.tokens)
        ids[i, :n] = torch.tensor(r.tokens)
        pos[i, :n] = torch.tensor(r.positions)
        allowed[i, 0, :n, p : p + n] = torch.from_numpy(r.mask)
    # padding queries attend to themselves so no softmax row is empty (no NaNs)
    diag = torch.arange(width)
    allowed[:, 0, diag, p + diag] = True
    mask = torch.zeros(allowed.shape, dtype=lm.dtype)
    mask.masked_fill_(~allowed, torch.finfo(lm.dtype).min)
    cache = None
    if prefix_kv:
        cache = DynamicCache(
            ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in prefix_kv],
            config=lm.model.config,
        )
    out = lm.model.base_model(
        input_ids=ids.to(lm.device),
        position_ids=pos.to(lm.device),
        attention_mask=mask.to(lm.device),
        use_cache=cache is not None,
        **_cache_kwarg(lm, cache),
    )
    hidden = out.last_hidden_state
    sel_b = torch.tensor([i for i, r in enumerate(rows) for _ in r.needed], device=lm.device)
    sel_t = torch.tensor([t for r in rows for t in r.needed], device=lm.device)
    logits = hidden[sel_b, sel_t].float() @ lm.lm_head_weight.T
    logp = torch.log_softmax(logits, dim=-1).cpu()
    result, k = [], 0
    for r in rows:
        result.append(logp[k : k + len(r.needed)])
        k += len(r.needed)
    return result


def answer_logprobs(trie: AnswerTrie, logp: np.ndarray) -> tuple[np.ndarray, float]:
    """Log-probability of each answer under the trie's rule, and the coverage.

    ``logp`` holds the next-token log-probabilities at slot 0 (after the prompt) and
    after each context, in slot order. Coverage is the probability that the reply
    is one of the answers as the rule reads them (for ``first_token``: that it starts
    with one of the answers' first tokens, each token counted once).
    """
    per_answer = np.array([sum(logp[slot, tok] for slot, tok in steps) for steps in trie.steps])
    if trie.rule in ("answer_start", "leading_integer"):
        for a, (slot, nxt) in enumerate(trie.stops):
            if nxt:
                extend = float(np.exp(logp[slot, list(nxt)]).sum())
                per_answer[a] += np.log1p(-min(extend, 1.0)) if extend < 1.0 else -np.inf
    finite = per_answer[np.isfinite(per_answer)]
    if trie.rule == "first_token":
        distinct = {steps[0][1] for steps in trie.steps}
        coverage = float(np.exp([logp[0, t] for t in distinct]).sum())
    else:
        coverage = float(np.exp(finite).sum()) if finite.size else 0.0
    return per_answer, min(coverage, 1.0)


def _distribution(enc: _Encoded, logp: torch.Tensor, cached: int) -> AnswerDistribution:
    per_answer, coverage = answer_logprobs(enc.trie, logp.double().numpy())
    top = per_answer.max()
    if np.isfinite(top):
        probs = np.exp(per_answer - top)
        probs /= probs.sum()  # renormalised in log space: no underflow
    else:  # not one admissible answer has any probability: no distribution to report
        coverage, probs = 0.0, np.full(len(per_answer), np.nan)
    ok = coverage > 0.0 and bool(np.isfinite(probs).all())
    # same wording as the engine's flag for rows without coverage
    flag = "" if ok else "coverage 0: no probability on any admissible answer"
    usage = Usage(prompt_tokens=len(enc.prompt), cached_tokens=cached)
    return AnswerDistribution(
        probs=tuple(float(x) for x in probs),
        coverage=coverage,
        estimator="logprobs",
        usage=usage,
        flag=flag,
        answer_rule=enc.trie.rule,
    )


#: Called after each forward batch with the (request index, distribution) pairs it finished.
BatchDone = Callable[[list[tuple[int, AnswerDistribution]]], None]


def score_requests(
    lm: LoadedModel,
    requests: Sequence[ScoreRequest],
    *,
    prefix_cache: PrefixCache | None = None,
    max_batch_tokens: int = 2048,
    reuse_prefix: bool = True,
    split_shorter: float | None = SPLIT_SHORTER,
    grouped_attention: bool = True,
    on_batch: BatchDone | None = None,
    stats: ForwardStats | None = None,
) -> list[AnswerDistribution]:
    """Exact distributions for ``requests`` (order kept); see the module docstring.

    ``reuse_prefix=False`` encodes every prompt whole in its own row (the same
    numbers up to float reordering; for tests and comparisons). ``split_shorter=None``
    and ``grouped_attention=False`` are the engine before issue 25 (batches filled by
    the token budget whatever their rows' lengths; key/value heads copied per query
    head), kept for the bench and the test that compare the two paths. ``on_batch``
    hears of each forward batch's answers as they are done (progress, saving);
    ``stats`` adds up what the forward passes computed.
    """
    import torch

    from valuesim.llm.gqa_attention import GQA_SDPA, STOCK_SDPA, attention_implementation

    cache = prefix_cache if prefix_cache is not None else PrefixCache()
    groups: dict[tuple[int, ...], list[_Encoded]] = {}
    for enc in encode(lm, requests):
        if not reuse_prefix:
            enc.prefix_len = 0
        groups.setdefault(tuple(enc.prompt[: enc.prefix_len]), []).append(enc)
    results: list[AnswerDistribution | None] = [None] * len(requests)
    # only models loaded with sdpa switch (load_model sets GQA_SDPA; tests may load others)
    switch = lm.model.config._attn_implementation in (GQA_SDPA, STOCK_SDPA)
    attention = GQA_SDPA if grouped_attention else STOCK_SDPA
    with torch.inference_mode(), attention_implementation(lm.model, attention) if switch else nullcontext():
        for prefix, encs in groups.items():
            kv, hit = cache.get(lm, prefix)
            if stats is not None and not hit:
                stats.prefix_tokens += len(prefix)
                stats.attended += len(prefix) * (len(prefix) + 1) // 2
            rows = sorted((_make_row(e) for e in encs), key=lambda r: -len(r.tokens))
            for span in plan_batches([len(r.tokens) for r in rows], max_batch_tokens, split_shorter):
                batch = rows[span.start : span.stop]
                done = []
                for r, logp in zip(batch, _forward_rows(lm, batch, kv, len(prefix), stats), strict=True):
                    reused = len(prefix) if hit or r.enc is not encs[0] else 0
                    results[r.enc.index] = dist = _distribution(r.enc, logp, reused)
                    done.append((r.enc.index, dist))
                if on_batch is not None:
                    on_batch(done)
    return [r for r in results if r is not None]

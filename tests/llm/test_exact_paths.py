"""The exact scorer's faster path (issue 25, item 1) against the path before it.

Batches end where rows get more than 10% shorter than the batch's first row, and
attention reads the shared key/value heads in place (grouped-query attention inside
SDPA); neither may change a distribution beyond float reordering. The slow tests
score real prompts of the demo study (value personas, every target question) with
the embedded model both ways.
"""

from __future__ import annotations

import pytest

from valuesim.llm.exact_scoring import SPLIT_SHORTER, plan_batches
from valuesim.llm.transformers_provider import TransformersProvider
from valuesim.llm.types import ScoreRequest


def _spans(lengths: list[int], budget: int, split: float | None) -> list[list[int]]:
    return [list(r) for r in plan_batches(lengths, budget, split)]


def test_a_batch_ends_where_rows_get_more_than_ten_percent_shorter() -> None:
    lengths = [100, 95, 90, 89, 50, 49, 20]
    # 90 is 10% shorter than 100 (kept), 89 more (a new batch); 50 starts one; 20 too
    assert _spans(lengths, 10_000, SPLIT_SHORTER) == [[0, 1, 2], [3], [4, 5], [6]]
    # the path before: the token budget alone decides, whatever the lengths
    assert _spans(lengths, 10_000, None) == [list(range(7))]


def test_the_token_budget_still_caps_a_batch() -> None:
    lengths = [100] * 5 + [99] * 5
    # 250 padded tokens hold two rows of width 100
    assert _spans(lengths, 250, SPLIT_SHORTER) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert _spans(lengths, 250, None) == _spans(lengths, 250, SPLIT_SHORTER)
    # a row wider than the budget still goes, alone
    assert _spans([300, 290], 100, SPLIT_SHORTER) == [[0], [1]]
    assert _spans([], 100, SPLIT_SHORTER) == []


def test_masked_grouped_attention_equals_copied_heads_on_the_cpu() -> None:
    """torch's SDPA with enable_gqa and a float mask, on the CPU, against transformers'
    repeat_kv path (9 query heads over 3 key/value heads, as SmolLM2)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from valuesim.llm.gqa_attention import gqa_sdpa_attention_forward

    gen = torch.Generator().manual_seed(0)
    b, heads, kv_heads, q_len, prefix, dim = 3, 9, 3, 17, 23, 64
    query = torch.randn(b, heads, q_len, dim, generator=gen)
    key = torch.randn(b, kv_heads, prefix + q_len, dim, generator=gen)
    value = torch.randn(b, kv_heads, prefix + q_len, dim, generator=gen)
    allowed = torch.rand(b, 1, q_len, prefix + q_len, generator=gen) > 0.4
    allowed[:, 0, torch.arange(q_len), prefix + torch.arange(q_len)] = True
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)

    class Layer(torch.nn.Module):
        num_key_value_groups = heads // kv_heads
        is_causal = True

    with torch.inference_mode():
        copied, _ = sdpa_attention_forward(Layer(), query, key, value, mask, scaling=dim**-0.5)
        grouped, _ = gqa_sdpa_attention_forward(Layer(), query, key, value, mask, scaling=dim**-0.5)
        # and both against attention written out by hand
        k, v = key.repeat_interleave(3, dim=1), value.repeat_interleave(3, dim=1)
        by_hand = ((query @ k.transpose(-1, -2)) * dim**-0.5 + mask).softmax(-1) @ v
    assert grouped.shape == copied.shape == (b, q_len, heads, dim)
    torch.testing.assert_close(grouped, copied, rtol=0, atol=1e-5)
    torch.testing.assert_close(grouped, by_hand.transpose(1, 2), rtol=0, atol=1e-5)


# -- with the embedded model and the demo study's prompts ---------------------


@pytest.fixture(scope="module")
def demo_requests() -> list[ScoreRequest]:
    from valuesim.benchmark import bench_units
    from valuesim.config import Params
    from valuesim.llm.types import Decoding

    units, _, _ = bench_units(Params(), ["JPN", "DEU"], 1, None)
    return [ScoreRequest(u.messages, u.answers, Decoding()) for u in units]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> TransformersProvider:
    from valuesim.config import ModelSpec
    from valuesim.plugins import providers

    spec = ModelSpec(provider="transformers", model="embedded", precision="fp32")
    return providers()["transformers"].create(spec, state_dir=tmp_path_factory.mktemp("state"))


@pytest.mark.slow
def test_the_new_path_gives_the_old_distributions_with_less_padding(
    provider: TransformersProvider, demo_requests: list[ScoreRequest]
) -> None:
    from valuesim.benchmark import BEFORE_ISSUE_25, total_variation
    from valuesim.llm.exact_scoring import ForwardStats, PrefixCache, score_requests
    from valuesim.llm.gqa_attention import GQA_SDPA

    lm = provider.lm
    assert lm.model.config._attn_implementation == GQA_SDPA  # what load_model sets
    before, after = ForwardStats(), ForwardStats()
    old = score_requests(lm, demo_requests, prefix_cache=PrefixCache(), stats=before, **BEFORE_ISSUE_25)
    # the old path switches attention for its call only
    assert lm.model.config._attn_implementation == GQA_SDPA
    new = score_requests(lm, demo_requests, prefix_cache=PrefixCache(), stats=after)
    assert len(demo_requests) >= 60
    tvs = [total_variation(a.probs, b.probs) for a, b in zip(old, new, strict=True)]
    assert max(tvs) <= 1e-5, max(tvs)
    assert [a.coverage for a in old] == pytest.approx([b.coverage for b in new], abs=1e-5)
    # the same real work, less padding, in more (narrower) batches
    assert after.row_tokens == before.row_tokens
    assert after.attended == before.attended
    assert after.padding_share < before.padding_share
    assert after.batches > before.batches
    # padding costs time, not FLOPs: both paths did the same useful work
    from valuesim.llm.roofline import forward_flops

    assert forward_flops(lm, after) == forward_flops(lm, before) > 1e11


@pytest.mark.slow
def test_each_forward_batch_reports_its_answers_as_they_are_done(
    provider: TransformersProvider, demo_requests: list[ScoreRequest]
) -> None:
    from valuesim.llm.exact_scoring import PrefixCache, score_requests

    reports: list[list[int]] = []
    got = score_requests(
        provider.lm, demo_requests[:12], prefix_cache=PrefixCache(), max_batch_tokens=256,
        on_batch=lambda done: reports.append([i for i, _ in done]),
    )
    assert len(reports) > 2  # several batches, each reported on its own
    assert sorted(i for r in reports for i in r) == list(range(12))
    whole = score_requests(provider.lm, demo_requests[:12], prefix_cache=PrefixCache())
    flat = [p for d in got for p in d.probs]
    assert flat == pytest.approx([p for d in whole for p in d.probs], abs=1e-5)  # float reordering

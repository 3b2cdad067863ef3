"""Grouped-query attention inside SDPA for the exact scorer's masked forward passes.

SmolLM2 (like most recent decoders) has fewer key/value heads than query heads (9
query heads share 3 key/value heads). transformers' ``sdpa`` attention lets torch's
``scaled_dot_product_attention`` handle the sharing itself (``enable_gqa=True``)
only when no mask is given (or under ``TRANSFORMERS_SDPA_FORCE_GQA=1``, a
process-wide switch); with a mask it first copies every key/value head
``num_key_value_groups`` times (``repeat_kv``). The exact scorer always passes a
4-D mask (the answer trie's), so every layer of every batch paid for those copies.

On the CPU, torch's fused attention reads the shared heads in place with a mask
too (torch 2.13: the same outputs as the copied path within 1e-5 in
tests/llm/test_exact_paths.py, and bit-identical answer distributions on the demo
study's prompts), so this module registers one named attention
function with transformers' :class:`~transformers.AttentionInterface` that does
that for masked CPU calls and hands every other call (no mask, CUDA, where masked
GQA falls back to the slow math kernel, position biases, soft caps) to
transformers' own ``sdpa`` function unchanged. The mask functions are the
``sdpa`` ones, so ``generate`` and unmasked calls behave exactly as ``sdpa``.

Registering is explicit (:func:`register`), not an import side effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: the attention implementation's name in transformers' registry
GQA_SDPA = "valuesim_sdpa_gqa"
#: transformers' own SDPA attention (repeat_kv before a masked call): today's path
STOCK_SDPA = "sdpa"


def gqa_sdpa_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; shapes as its ``sdpa_attention_forward``."""
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = int(getattr(module, "num_key_value_groups", 1))
    plain = not (kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None
                 or kwargs.get("output_attentions"))
    if attention_mask is None or groups == 1 or query.device.type != "cpu" or not plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    out = F.scaled_dot_product_attention(
        query, key, value,
        attn_mask=attention_mask,
        dropout_p=float(kwargs.get("dropout", 0.0)),
        scale=kwargs.get("scaling"),
        is_causal=False,  # the mask says everything (as transformers does with a mask)
        enable_gqa=True,
    )
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :data:`GQA_SDPA` known to transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if GQA_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(GQA_SDPA, gqa_sdpa_attention_forward)
        AttentionMaskInterface.register(GQA_SDPA, ALL_MASK_ATTENTION_FUNCTIONS[STOCK_SDPA])
    return GQA_SDPA


def use_grouped_attention(model: Any) -> None:
    """Switch a loaded sdpa model to :data:`GQA_SDPA` (models without grouped heads too:
    the function then hands every call to ``sdpa``)."""
    if getattr(model.config, "_attn_implementation", None) == STOCK_SDPA:
        model.set_attn_implementation(register())


@contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """``model`` runs with attention ``name`` inside the block (for comparing paths)."""
    before = model.config._attn_implementation
    if name == before:
        yield
        return
    if name == GQA_SDPA:
        register()
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(before)

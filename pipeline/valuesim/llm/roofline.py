"""How close the exact scorer runs to the machine's matrix-multiply peak.

:func:`forward_flops` counts the floating-point operations the exact scorer's
forward passes need for what they compute (:class:`~valuesim.llm.exact_scoring.ForwardStats`);
:func:`gemm_peak_gflops` measures what ``torch.mm`` reaches on this machine with
the current thread count. Their ratio is the share of the roofline a run reaches.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from valuesim.llm.exact_scoring import ForwardStats
    from valuesim.llm.local_model import LoadedModel


def forward_flops(lm: LoadedModel, stats: ForwardStats) -> float:
    """FLOPs of the useful work in ``stats`` (a multiply-add counts 2):

        2 x W x (prefix_tokens + row_tokens)      weight matmuls of every layer
      + 4 x L x H x d x attended                  attention scores (QK^T) and sums (AV)
      + 2 x D x V x head_positions                the fp32 vocabulary projection

    W: weights of the decoder's matrices (every 2-D parameter of the base model but
    the token embedding); L layers, H query heads of size d; D the hidden size, V the
    vocabulary. ``attended`` counts the (query, key) pairs the masks allow, so masked
    and padded positions are not counted: padding costs time but adds no FLOPs, and
    the achieved rate falls with it. Norms, rotary embeddings, activations and the
    log-softmax are left out (linear in the tokens, a few percent at most).
    """
    base = lm.model.base_model
    embed = base.get_input_embeddings().weight
    weights = sum(p.numel() for p in base.parameters() if p.ndim == 2 and p is not embed)
    cfg = lm.model.config
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    layers = int(cfg.num_hidden_layers)
    vocab, hidden = lm.lm_head_weight.shape
    return float(
        2 * weights * (stats.prefix_tokens + stats.row_tokens)
        + 4 * layers * heads * head_dim * stats.attended
        + 2 * hidden * vocab * stats.head_positions
    )


def gemm_peak_gflops(n: int = 1024, min_s: float = 0.5, rounds: int = 3) -> float:
    """GFLOP/s of fp32 ``torch.mm`` on two n x n matrices (2n^3 FLOPs each), the best of
    ``rounds`` rounds of at least ``min_s`` seconds, with torch's current thread count
    and on the CPU: the peak the scorer's GEMMs can reach here."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up: thread pool, packing buffers
    best = 0.0
    for _ in range(rounds):
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_s or count == 0:
            torch.mm(a, b, out=out)
            count += 1
        best = max(best, 2.0 * n**3 * count / elapsed / 1e9)
    return best

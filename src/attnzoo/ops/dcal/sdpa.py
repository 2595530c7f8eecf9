"""Pair-wise cross-attention through one SDPA call: the target's and the distractor's keys (and values)
concatenated, then the softmax op's SDPA path (:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`, SDPA's flash kernels,
a first-order backward).

Why not two SDPA calls merged by their log-sum-exp (no concatenation)? The concatenation copies
``(N1 + N2) · (D + Dv)`` values per head, O(N D) against the O(N² D) attention, and keeps one fused kernel in the
forward and the backward; the merge would need the kernels' log-sum-exp (a private ATen output on CPU) and a
hand-written backward through it. Measured (AVX-512 AMD EPYC, 2 threads shared with other jobs, float32,
B=2 H=12 N1=N2=785 D=64, ViT-B at 448 px, medians of 15; ``torch.cat`` of K and V against
``F.scaled_dot_product_attention`` on the result): concatenation 1.1 ms, SDPA 172 ms, the whole ``sdpa``
path 191 ms, the dense ``reference`` 834 ms."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.softmax.sdpa import softmax_sdpa


def pwca_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key2: torch.Tensor,
              value2: torch.Tensor, *, scale: float) -> torch.Tensor:
    """``softmax(q [k; k2]ᵀ · scale) [v; v2]`` for ``(B, H, Nq, D)`` queries, one SDPA call."""
    return softmax_sdpa(query, torch.cat([key, key2], dim=2), torch.cat([value, value2], dim=2), is_causal=False,
                        scale=scale, dropin=DropIn(cross=True))

"""Sparsifiner attention one query block at a time (the fast path): never an ``N x N`` matrix.

For a block of queries: their scores against every key by one GEMM (``(B, H, rows, N)``), the ``top_k`` selected
scores gathered, softmax over them, the probabilities scattered back into the block and one GEMM with ``V``
(through :func:`attnzoo.ops.dense.attend_values`, so a non-finite value reaches only the queries that selected
it). With gradients the block is checkpointed (``torch.utils.checkpoint``, non-reentrant): its activations are
recomputed in the backward, so the live memory is the ``(B, H, N, top_k)`` selection plus a few blocks of
:data:`.connectivity.BLOCK_ELEMENTS` entries, whatever the length. Plain autograd inside, any order.

Gathering the selected keys instead (a ``(B, H, rows, top_k, D)`` gather and batched dot products) does
``top_k / N`` of the arithmetic but is memory-bound: measured on 2 CPU cores at N = 4096, top_k = 410, D = 64,
4 heads, it ran 15x slower forward and 5x slower forward + backward than the GEMM over all keys per block.
The ``global_queries`` rows attend densely (:func:`attnzoo.ops.dense.dense_attention`, ``g x N``).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from attnzoo.ops.dense import attend_values, dense_attention, has_non_finite
from attnzoo.ops.sparsifiner.connectivity import block_rows


def _attend_block(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor,
                  scale: float, finite_values: bool) -> torch.Tensor:
    """``(B, H, rows, D)`` queries attending to their ``(B, H, rows, top_k)`` selected keys -> ``(B, H, rows, Dv)``;
    ``finite_values``: ``value`` holds no NaN or infinity (then the plain GEMM is exact)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    probs = torch.softmax(scores.gather(-1, indices), dim=-1)
    weights = torch.zeros_like(scores).scatter(-1, indices, probs)
    if finite_values:
        return torch.matmul(weights, value)
    visible = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device).scatter(-1, indices, True)
    return attend_values(weights, value, visible)


def sparsifiner_blocked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor, *,
                        global_queries: int, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` q/k, ``(B, H, N, Dv)`` v, ``(B, H, N - g, top_k)`` selected keys -> ``(B, H, N, Dv)``."""
    b, h, n, _ = query.shape
    parts = [dense_attention(query[:, :, :global_queries], key, value, scale=scale)] if global_queries else []
    step = block_rows(b * h, n, n - global_queries)
    recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    finite_values = not has_non_finite(value)  # once per call, not per block
    for start in range(global_queries, n, step):
        rows = slice(start, start + step)
        selected = indices[:, :, start - global_queries:start - global_queries + step]
        if recompute:
            parts.append(checkpoint(_attend_block, query[:, :, rows], key, value, selected, scale, finite_values,
                                    use_reentrant=False))
        else:
            parts.append(_attend_block(query[:, :, rows], key, value, selected, scale, finite_values))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

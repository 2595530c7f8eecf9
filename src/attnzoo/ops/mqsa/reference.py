"""The oracle of multi-query self-attention (MQSA): dense causal scores and an explicit mask, one softmax per
query kind."""

from __future__ import annotations

import torch

from attnzoo.ops.mqsa.window import causal_window_mean


def causal_visibility(n: int, key_padding_mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """``(B or 1, 1, N, N)`` boolean: query ``t`` sees key ``j`` when ``j <= t`` and ``j`` is not padding."""
    visible = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]
    return visible if key_padding_mask is None else visible & ~key_padding_mask[:, None, None, :]


def masked_softmax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, visible: torch.Tensor,
                             scale: float) -> torch.Tensor:
    """``softmax(Q Kᵀ · scale)`` over the ``visible`` keys of each query, times ``V``; a query that sees no key
    gives zeros (and zero gradients)."""
    scores = torch.einsum("bhqd,bhkd->bhqk", query, key) * scale
    sees_any = visible.any(-1, keepdim=True)
    scores = scores.masked_fill(~visible, float("-inf")).masked_fill(~sees_any, 0.0)
    weights = torch.softmax(scores, dim=-1) * visible
    return torch.einsum("bhqk,bhkd->bhqd", weights, value)


def mqsa_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, window: int, alpha: float,
                   scale: float, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``alpha · A(Q) + (1 - alpha) · A(mean_window(Q))`` with ``A`` causal masked softmax attention over
    ``(K, V)``; padded query positions output zero. O(N² D) time and memory."""
    visible = causal_visibility(query.shape[2], key_padding_mask, query.device)
    short = masked_softmax_attention(query, key, value, visible, scale)
    long = masked_softmax_attention(causal_window_mean(query, window, key_padding_mask), key, value, visible, scale)
    out = alpha * short + (1 - alpha) * long
    return out if key_padding_mask is None else out * (~key_padding_mask)[:, None, :, None]

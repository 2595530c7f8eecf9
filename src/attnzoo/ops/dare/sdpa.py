"""DARE target attention through ``scaled_dot_product_attention`` (:func:`attnzoo.ops.softmax.softmax_attention`,
``impl="sdpa"``): each of the ``M`` targets is a query head of one query token, and the history one shared
key/value head (grouped heads, no copies), so any number of targets fits SDPA's one call. With ``top_k`` the scores are computed once more, without gradient, to pick each target's keys (the
TWIN search), and the choice goes to SDPA as a boolean mask. First-order backward only."""

from __future__ import annotations

import torch

from attnzoo.ops.dare.search import top_k_visible
from attnzoo.ops.softmax.functional import softmax_attention


def dare_sdpa(target: torch.Tensor, history_attention: torch.Tensor, history_representation: torch.Tensor, *,
              scale: float, top_k: int | None, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``(B, M, Da)`` targets, ``(B, N, Da)`` / ``(B, N, Dr)`` history -> ``(B, M, Dr)``."""
    attn_mask = None
    if top_k is not None and top_k < history_attention.shape[1]:
        with torch.no_grad():
            scores = torch.einsum("bmd,bnd->bmn", target, history_attention) * scale
        visible = torch.ones_like(scores, dtype=torch.bool)
        if key_padding_mask is not None:
            visible = visible & ~key_padding_mask[:, None, :]
        attn_mask = top_k_visible(scores, visible, top_k)[:, :, None]  # (B, M, 1, N)
    out = softmax_attention(target[:, :, None], history_attention[:, None], history_representation[:, None], False,
                            scale, "sdpa", attn_mask=attn_mask, key_padding_mask=key_padding_mask, enable_gqa=True)
    return out[:, :, 0]

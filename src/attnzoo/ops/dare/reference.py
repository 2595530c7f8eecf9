"""The oracle of DARE target attention: dense scores, explicit padding and top-k mask, one softmax."""

from __future__ import annotations

import torch

from attnzoo.ops.dare.search import top_k_visible


def dare_reference(target: torch.Tensor, history_attention: torch.Tensor, history_representation: torch.Tensor, *,
                   scale: float, top_k: int | None, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``softmax_j(e_att(target) · e_att(h_j) · scale) e_repr(h_j)`` over the visible (and top-k selected)
    history items; a target with none gets zeros. O(M N Da + M N Dr)."""
    scores = torch.einsum("bmd,bnd->bmn", target, history_attention) * scale
    b, m, n = scores.shape
    visible = torch.ones(b, m, n, dtype=torch.bool, device=target.device)
    if key_padding_mask is not None:
        visible = visible & ~key_padding_mask[:, None, :]
    visible = top_k_visible(scores, visible, top_k)
    sees_any = visible.any(-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~visible, float("-inf")).masked_fill(~sees_any, 0.0), -1) * visible
    return torch.einsum("bmn,bnd->bmd", weights, history_representation)

"""GPSA, the oracle: the official ``GPSA.get_attention`` (facebookresearch/convit ``convit.py``) on given
q, k, v: positional scores per batch entry from the relative positions, both softmaxes, the gated mixture, the
row normalisation, then ``A v``. Dense: O(B · H · N²) memory."""

from __future__ import annotations

import torch

from attnzoo.ops.gpsa.positions import relative_positions


def gpsa_weights(query: torch.Tensor, key: torch.Tensor, *, pos_weight: torch.Tensor, gate: torch.Tensor,
                 scale: float) -> torch.Tensor:
    """The mixed attention ``(B, H, N, N)`` of ``(B, H, X, Y, D)`` queries and keys (module docstring of
    :mod:`attnzoo.ops.gpsa.functional`)."""
    batch, heads, rows, cols, _ = query.shape
    q, k = query.flatten(2, 3), key.flatten(2, 3)
    rel = relative_positions((rows, cols), device=query.device, dtype=query.dtype)
    pos_score = (rel.expand(batch, -1, -1, -1) @ pos_weight.transpose(0, 1)).permute(0, 3, 1, 2)
    patch_score = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    sigma = torch.sigmoid(gate).view(1, heads, 1, 1)
    attn = (1.0 - sigma) * patch_score + sigma * pos_score.softmax(dim=-1)
    return attn / attn.sum(dim=-1, keepdim=True)


def gpsa_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pos_weight: torch.Tensor,
                   gate: torch.Tensor, scale: float,
                   return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, X, Y, D)`` queries/keys, ``(B, H, X, Y, Dv)`` values -> ``(B, H, X, Y, Dv)`` (and the weights)."""
    attn = gpsa_weights(query, key, pos_weight=pos_weight, gate=gate, scale=scale)
    out = (attn @ value.flatten(2, 3)).unflatten(2, query.shape[2:4])
    return (out, attn) if return_weights else out

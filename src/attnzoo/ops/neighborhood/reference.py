"""Neighborhood attention, the oracle: dense scores with the explicit mask built from the shared mask function;
with drop-in options, :func:`attnzoo.ops.dropin.dropin_attention` on the grid flattened row-major."""

from __future__ import annotations

import torch

from attnzoo.masks import NeighborhoodPattern
from attnzoo.ops.dense import pattern_attention
from attnzoo.ops.dropin import DropIn, dropin_attention
from attnzoo.positional import relative_position_index


def rpb_radius(pattern: NeighborhoodPattern) -> tuple[int, ...]:
    """Reach of the NAT relative position bias: offsets up to ``k - 1`` (table ``2k - 1``) per axis."""
    return tuple(k - 1 for k in pattern.kernel_size)


def neighborhood_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                           pattern: NeighborhoodPattern, rpb: torch.Tensor | None, scale: float,
                           dropin: DropIn = DropIn()) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, Hq, *grid, D)`` queries, ``(B, Hkv, *grid, D)`` keys -> ``(B, Hq, *grid, Dv)`` through an N x N
    mask; O(N^2) time and memory. Drop-in options (masks, key padding, grouped KV heads, dropout, weights
    ``(B, Hq, N, N)``) on the flattened grid."""
    if not dropin.features:
        return pattern_attention(query, key, value, pattern=pattern, scale=scale, table=rpb,
                                 radius=rpb_radius(pattern), dilation=pattern.dilation)

    def bias() -> torch.Tensor:  # (Hq, N, N), the RPB of every (query, key) pair
        idx = torch.arange(pattern.num_tokens, device=query.device)
        rel = relative_position_index(idx[:, None], idx[None, :], pattern.shape, rpb_radius(pattern),
                                      pattern.dilation)
        return rpb.flatten(1)[:, rel]

    result = dropin_attention(*(t.flatten(2, -2) for t in (query, key, value)), dropin=dropin,
                              pattern=pattern.mask_mod(), scale=scale, bias=None if rpb is None else bias)
    out, weights = result if dropin.return_weights else (result, None)
    out = out.reshape(*query.shape[:-1], value.shape[-1])
    return (out, weights) if dropin.return_weights else out

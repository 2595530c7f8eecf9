"""HaloNet attention, the fast path: timm's pad-and-unfold blocking and one batched attention per block.

Queries are cut into ``(b/s)^2``-query blocks; keys and values are zero-padded by the halo and unfolded into
the overlapping ``w x w`` windows (``F.pad`` then ``Tensor.unfold`` twice, as timm's ``HaloAttn``); each block
attends to its window through ``scaled_dot_product_attention`` with the position term (and, with
``mask_padding=True``, ``-inf`` on padding keys) as additive mask. Nothing of size N x N is built:
time O(N/s² · w² · D), memory O(N/s² · w²) for the scores plus ``w²/b²`` copies of K and V (3.06x at b=8,
h=3). Backward is autograd through unfold (a fold), GEMMs and the gathers of the position term.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from attnzoo.ops.halo.pattern import HaloPattern, halo_rel_index, position_logits
from attnzoo.ops.window.partition import window_merge, window_partition


def _windows(t: torch.Tensor, pattern: HaloPattern) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, nX·nY, w², D)``: each block's zero-padded ``w x w`` key window."""
    b, h, w = pattern.block_size, pattern.halo_size, pattern.window
    t = F.pad(t, (0, 0, h, h, h, h)).unfold(2, w, b).unfold(3, w, b)  # (B, H, nX, nY, D, w, w)
    return t.permute(0, 1, 2, 3, 5, 6, 4).reshape(*t.shape[:2], -1, w * w, t.shape[4])


@functools.lru_cache(maxsize=32)
def _layout(pattern: HaloPattern, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per axis: table rows ``(bq², w)`` of (query slot, window row / column) and padding ``(nB, 1, w)``.

    Inside a block, query slot ``t`` sits at pixel ``s·t`` and window slot ``k`` at pixel ``k - h`` (relative to
    the block's first pixel); a window row (column) is padding when its pixel ``I·b + k - h`` is off the image.
    Padding is separable, so it is folded into the per-axis terms rather than a full ``w x w`` mask.
    """
    b, h, s, w = pattern.block_size, pattern.halo_size, pattern.stride, pattern.window
    bq = b // s
    slots = torch.arange(w, device=device)
    index = halo_rel_index(s * torch.arange(bq, device=device)[:, None], slots[None, :] - h, h, w)

    def padding(length: int) -> torch.Tensor:  # (blocks on the axis, w)
        pixel = torch.arange(0, length, b, device=device)[:, None] + slots - h
        return (pixel < 0) | (pixel >= length)

    nx, ny = pattern.shape[0] // b, pattern.shape[1] // b
    rows = padding(pattern.shape[0])[:, None].expand(nx, ny, w).reshape(-1, 1, w)
    cols = padding(pattern.shape[1])[None, :].expand(nx, ny, w).reshape(-1, 1, w)
    return index.repeat_interleave(bq, 0), index.repeat(bq, 1), rows, cols


def _axis_term(q: torch.Tensor, table: torch.Tensor | None, index: torch.Tensor,
               padding: torch.Tensor | None) -> torch.Tensor | None:
    """Logits added along one window axis, ``(B, H, nB, bq², w)`` or ``(nB, 1, w)``: position term and -inf."""
    term = None if table is None else position_logits(q, table, index)
    if padding is not None:
        blocked = torch.zeros(padding.shape, dtype=q.dtype, device=q.device).masked_fill(padding, float("-inf"))
        term = blocked if term is None else term + blocked
    return term


def halo_blocked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: HaloPattern,
                 rel_h: torch.Tensor | None, rel_w: torch.Tensor | None, mask_padding: bool,
                 scale: float) -> torch.Tensor:
    """``(B, H, X/s, Y/s, D)`` queries, ``(B, H, X, Y, D)`` keys/values -> ``(B, H, X/s, Y/s, Dv)``."""
    bq, w = pattern.block_size // pattern.stride, pattern.window
    q = window_partition(query, (bq, bq))  # (B, H, nB, bq², D)
    batch, heads, blocks = q.shape[:3]
    k, v = (_windows(t, pattern).flatten(1, 2) for t in (key, value))  # (B, H·nB, w², D)
    rows, cols, pad_rows, pad_cols = _layout(pattern, str(query.device))
    masking = mask_padding and pattern.halo_size > 0
    row = _axis_term(q, rel_h, rows, pad_rows if masking else None)
    col = _axis_term(q, rel_w, cols, pad_cols if masking else None)
    bias = None
    if row is not None or col is not None:
        bias = (0 if row is None else row[..., :, None]) + (0 if col is None else col[..., None, :])
        bias = bias.expand(batch, heads, blocks, bias.shape[-3], w, w).reshape(batch, heads * blocks, -1, w * w)
    out = F.scaled_dot_product_attention(q.flatten(1, 2), k, v, attn_mask=bias, scale=scale)
    return window_merge(out.unflatten(1, (heads, blocks)), pattern.query_shape, (bq, bq))

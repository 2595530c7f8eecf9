"""SSA's fast path: gather each query segment's sampled keys once and attend them with SDPA, segment by segment.

The sample is shared by the batch and the heads, so the gathered tensors are laid out segment-major: queries
``(segments, B·H, s, D)`` (the last segment padded with its last query, whose outputs are dropped), keys and
values ``(segments, B·H, K, D)``, gathered token-major from ``(N, B·H, D)`` (one ``index_select``; its backward a
token-major ``index_add``), and one additive mask ``(segments, 1, s, K)`` (padding slots, causal: later keys;
``-log pi`` with importance weighting) that broadcasts over the batch and the heads. Then one SDPA call per
group of consecutive segments (CPU flash kernel with a mask; in eager calls through the softmax op's first-order
wrapper, :func:`~attnzoo.ops.softmax.sdpa.softmax_sdpa`), each group cut to its longest row: causal rows hold
fewer keys early in the sequence, so up to four groups trim most of the padding (measured at N = 4096, ratio 4:
half the slots of one padded block were padding; forward+backward 0.43 s instead of 0.6-0.9 s). Time
O(N · K · D), memory O(N · K · D / s) for the gathered keys and values and O(N · K) for the mask: nothing
``N x N`` is formed.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.softmax.sdpa import softmax_sdpa
from attnzoo.ops.tiled import mask_logits

GROUPS = 4
"""At most this many groups of consecutive query segments, each attended with its own key count."""


def _groups(key_index: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(first row, end row, key slots)`` of each group: consecutive rows, cut after their last sampled slot.
    One host read of the rows' lengths; one group of every slot while ``torch.compile`` traces (no
    data-dependent shapes there)."""
    rows, width = key_index.shape
    if torch.compiler.is_compiling():
        return [(0, rows, width)]
    used = key_index >= 0
    lengths = (width - used.flip(1).int().argmax(1)).tolist()  # each row's last sampled slot + 1
    bounds = sorted({round(rows * g / GROUPS) for g in range(GROUPS + 1)})
    return [(a, b, max(lengths[a:b])) for a, b in itertools.pairwise(bounds)]


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(rows, B·H, n, D)`` for an ``(rows, n)`` token index."""
    tokens = x.flatten(0, 1).transpose(0, 1)  # (N, B·H, D)
    return tokens.index_select(0, index.reshape(-1)).view(*index.shape, -1, x.shape[-1]).transpose(1, 2)


def ssa_gathered(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, key_index: torch.Tensor,
                 segment_size: int, is_causal: bool, log_weight: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)`` on the gathered subsample."""
    batch, heads, length, _ = query.shape
    rows = key_index.shape[0]
    positions = torch.arange(rows * segment_size, device=query.device).view(rows, segment_size)
    positions = positions.clamp(max=length - 1)  # the last segment's padding repeats its last query
    outs = []
    for first, end, width in _groups(key_index):
        index = key_index[first:end, :width]
        sampled, keys, queries = index >= 0, index.clamp(min=0), positions[first:end]
        visible = sampled[:, None, :].expand(-1, segment_size, -1)
        if is_causal:
            visible = visible & (keys[:, None, :] <= queries[:, :, None])
        logits = mask_logits(visible, torch.float32 if log_weight is None else log_weight.dtype)
        if log_weight is not None:
            logits = logits + torch.where(sampled, log_weight[first:end, :width], 0)[:, None, :]
        mask = logits.to(query.dtype)[:, None]  # (rows, 1, s, K): broadcast over the batch and the heads
        blocks = _gather(query, queries), _gather(key, keys), _gather(value, keys)
        if torch.compiler.is_compiling():  # as softmax_sdpa itself: SDPA directly, which dynamo traces
            outs.append(F.scaled_dot_product_attention(*blocks, attn_mask=mask, scale=scale))
        else:  # its first-order wrapper of SDPA (differentiating twice raises NotSupportedError)
            outs.append(softmax_sdpa(*blocks, is_causal=False, scale=scale, dropin=DropIn(attn_mask=mask)))
    out = torch.cat(outs)  # (rows, B·H, s, Dv)
    return out.transpose(1, 2).reshape(rows * segment_size, batch, heads, -1)[:length].permute(1, 2, 0, 3)

"""S²-Attn and SF-Attn, the fast path: roll half the heads, reshape into groups, attend inside each group.

As in LongLoRA's ``forward_noflashattn``: heads ``h >= H // 2`` are rolled by ``-(G // 2)`` along the
sequence, the sequence is cut into ``N / G`` groups of ``G`` rolled positions, each group runs one masked
GEMM pair, and the shifted heads' output is rolled back. The in-group masks are evaluated from the pattern's
mask function at the original positions of the rolled slots, which is what makes the same kernel serve both
S²-Attn (plain causal groups) and SF-Attn (the wrap-around group cut in two, plus sink columns appended to
every group). Time O(N · (G + s) · D), memory O(N · (G + s)).
"""

from __future__ import annotations

import functools

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.sliding_window.patterns import GroupedPattern
from attnzoo.ops.sliding_window.sinks import append_sinks, sink_visibility
from attnzoo.ops.tiled import attend_tiles, compute_dtype, mask_logits


def roll_shifted_heads(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Roll heads ``h >= H // 2`` of ``x (B, H, N, D)`` by ``shift`` along the sequence."""
    half = x.shape[1] // 2
    return torch.cat([x[:, :half], x[:, half:].roll(shift, dims=2)], dim=1)


@functools.lru_cache(maxsize=32)
def grouped_visibility(pattern: GroupedPattern, device: str) -> torch.Tensor:
    """``(H, N / G, G, G + s)`` bool: in-group and sink columns of every rolled group, from the mask function."""
    heads, length, group = pattern.num_heads, pattern.length, pattern.group_size
    head = torch.arange(heads, device=device)[:, None]
    offset = (head >= heads // 2) * (group // 2)
    positions = ((torch.arange(length, device=device) + offset) % length).reshape(heads, -1, group)
    head = head[:, :, None, None]
    visible = pattern.mask_mod()(torch.zeros((), dtype=torch.long, device=device), head,
                                 positions[..., :, None], positions[..., None, :])
    sinks = sink_visibility(pattern.mask_mod(), positions, positions, pattern.num_sink_tokens, head)
    return torch.cat([visible, sinks], dim=-1)


@functools.lru_cache(maxsize=64)
def grouped_logits(pattern: GroupedPattern, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The cached additive mask logits of :func:`grouped_visibility`."""
    return mask_logits(grouped_visibility(pattern, device), dtype)


def grouped_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: GroupedPattern,
                      scale: float, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)`` group by group; time O(N · (G + s) · D). Grouped KV heads
    (``dropin.gqa``, the one drop-in feature it declares) are repeated to the query's heads."""
    if dropin.gqa:
        key, value = (t.repeat_interleave(query.shape[1] // key.shape[1], dim=1) for t in (key, value))
    batch, heads, length = query.shape[:3]
    shift, sinks = pattern.group_size // 2, pattern.num_sink_tokens

    def groups(x: torch.Tensor) -> torch.Tensor:
        return roll_shifted_heads(x, -shift).reshape(batch, heads, -1, pattern.group_size, x.shape[-1])

    keys, values = groups(key), groups(value)
    if sinks:
        keys, values = append_sinks(keys, key, sinks), append_sinks(values, value, sinks)
    logits = grouped_logits(pattern, str(query.device), compute_dtype(query.dtype))
    out = attend_tiles(groups(query), keys, values, logits, scale=scale)
    return roll_shifted_heads(out.reshape(batch, heads, length, -1), shift)

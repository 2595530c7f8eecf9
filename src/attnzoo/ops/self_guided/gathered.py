"""Self-guided attention, the fast path: one stable sort per tie-break order, one gather of the keys and values
in significance order, a weighted sum over each level's consecutive ``rates[l]`` pixels (a reshape), then one
SDPA of all queries over the ``keys = sum_l group_sizes[l] / rates[l]`` merged tokens (SDPA's flash kernel
through :func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`: first-order backward).

The official computation, with ``torch.sort(stable=True)`` for ``torch.sort`` (whose order among equal values is
unspecified) and the merging done on the projected keys and values instead of the input features (the same
by linearity; the merging bias is ``key_bias`` / ``value_bias``). Time O(N log N + N · (D + Dv) + N · keys ·
(D + Dv)), memory O(N · (D + Dv) + N · keys) per head; nothing ``N x N``.
"""

from __future__ import annotations

import torch

from attnzoo.ops.self_guided.plan import Reallocation
from attnzoo.ops.softmax.sdpa import softmax_sdpa


def significance_order(significance: torch.Tensor, order: str) -> torch.Tensor:
    """``(B, X, Y)`` -> ``(B, X·Y)``: row-major pixel indices by ascending significance, equals in ``order``
    (``"row"``: row-major, ``"column"``: column-major) order, NaN last."""
    batch, rows, cols = significance.shape
    if order == "row":
        return torch.sort(significance.reshape(batch, -1), dim=1, stable=True).indices
    column_major = torch.sort(significance.transpose(1, 2).reshape(batch, -1), dim=1, stable=True).indices
    return (column_major % rows) * cols + column_major // rows


def merge_levels(tokens: torch.Tensor, pool_weight: torch.Tensor, bias: torch.Tensor | None,
                 plan: Reallocation) -> torch.Tensor:
    """``(B, H, N, D)`` tokens in significance order -> ``(B, H, keys, D)``: each level's runs of ``rates[l]``
    consecutive tokens weighted by its ``pool_weight`` slice and summed, plus its ``bias`` ``(levels, H, D)``.
    One elementwise product with the weight of every rank and one sum per level (no transposing copy)."""
    rank_weight = torch.cat([pool_weight[start:start + rate].repeat(keys) for start, rate, keys in
                             zip(plan.weight_starts, plan.rates, plan.level_keys)])  # (N,)
    weighted = (tokens * rank_weight[:, None]).split(plan.group_sizes, dim=2)
    merged = [part.unflatten(2, (keys, rate)).sum(3) for part, keys, rate in zip(weighted, plan.level_keys, plan.rates)]
    if bias is not None:
        merged = [level_keys + bias[level][:, None] for level, level_keys in enumerate(merged)]
    return torch.cat(merged, dim=2)


def self_guided_gathered(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, significance: torch.Tensor,
                         pool_weight: torch.Tensor, key_bias: torch.Tensor | None, value_bias: torch.Tensor | None,
                         *, plan: Reallocation, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` q/k, ``(B, H, X, Y, Dv)`` v, ``(B, X, Y)`` significance -> ``(B, H, X, Y, Dv)``."""
    batch, heads = query.shape[:2]
    n = plan.num_tokens
    orders = torch.stack([significance_order(significance, order) for order in plan.tie_breaks], dim=1)
    index = orders.repeat_interleave(heads // len(plan.tie_breaks), dim=1)  # (B, H, N)
    # one row gather over all (batch, head) pairs: index_select of rows is several times faster than gather
    rows = (index + torch.arange(batch * heads, device=index.device).view(batch, heads, 1) * n).flatten()

    def merged(tokens: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ordered = tokens.reshape(-1, tokens.shape[-1]).index_select(0, rows).view(batch, heads, n, -1)
        return merge_levels(ordered, pool_weight, bias, plan)

    out = softmax_sdpa(query.flatten(2, 3), merged(key, key_bias), merged(value, value_bias), is_causal=False,
                       scale=scale)
    return out.unflatten(2, query.shape[2:4])

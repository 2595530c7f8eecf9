"""Self-guided attention, the oracle: each pixel's rank found by explicit pairwise comparison (no sort), the
explicit pooling matrix ``P`` (keys x pixels) and level matrix ``E`` (keys x levels), then dense attention over
``P K + E B_k`` and ``P V + E B_v``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.dense import check_dense_size, dense_attention
from attnzoo.ops.self_guided.plan import Reallocation, tie_break_position


def significance_ranks(significance: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` ranks of ``(B, N)`` significances: the number of pixels ordered before each one, by value
    (NaN above everything) and, among equals, by ``position``. O(N²) comparisons."""
    nan = significance.isnan()
    value = significance.masked_fill(nan, 0)
    vi, vj, ni, nj = value[:, :, None], value[:, None, :], nan[:, :, None], nan[:, None, :]
    equal = (ni == nj) & (vj == vi)
    before = (nj < ni) | ((ni == nj) & (vj < vi)) | (equal & (position[None, :] < position[:, None]))
    return before.sum(-1)  # before[b, i, j]: pixel j is ordered before pixel i


def pooling_matrices(ranks: torch.Tensor, pool_weight: torch.Tensor,
                     plan: Reallocation) -> tuple[torch.Tensor, torch.Tensor]:
    """``P`` ``(B, keys, N)`` with ``P[b, t, i]`` = the weight pixel ``i`` gets in key ``t``, and ``E`` ``(keys,
    levels)``, the one-hot level of each key. Pixel of rank ``r`` in level ``l`` (starting at rank ``S_l``) goes
    to key ``T_l + (r - S_l) // rates[l]`` with weight ``pool_weight[W_l + (r - S_l) % rates[l]]``."""
    key_index = torch.zeros_like(ranks)
    weight_index = torch.zeros_like(ranks)
    key_start = 0
    for start, size, rate, weight_start, keys in zip(plan.group_starts, plan.group_sizes, plan.rates,
                                                     plan.weight_starts, plan.level_keys):
        inside = (ranks >= start) & (ranks < start + size)
        offset = ranks - start
        key_index = torch.where(inside, key_start + offset // rate, key_index)
        weight_index = torch.where(inside, weight_start + offset % rate, weight_index)
        key_start += keys
    pooling = F.one_hot(key_index, plan.num_keys).to(pool_weight.dtype) * pool_weight[weight_index][..., None]
    levels = torch.repeat_interleave(torch.arange(len(plan.rates), device=ranks.device),
                                     torch.tensor(plan.level_keys, device=ranks.device))
    return pooling.transpose(1, 2), F.one_hot(levels, len(plan.rates)).to(pool_weight.dtype)


def self_guided_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, significance: torch.Tensor,
                          pool_weight: torch.Tensor, key_bias: torch.Tensor | None, value_bias: torch.Tensor | None,
                          *, plan: Reallocation, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` q/k, ``(B, H, X, Y, Dv)`` v, ``(B, X, Y)`` significance -> ``(B, H, X, Y, Dv)``.
    O(N² + N · keys · (D + Dv)) time; the ``N x N`` comparisons and the ``keys x N`` pooling matrix in memory."""
    batch, heads, n = query.shape[0], query.shape[1], plan.num_tokens
    check_dense_size("the N x N rank comparisons", (batch, n, n), torch.bool, "impl='gathered'")
    flat = significance.reshape(batch, n)
    per_group = heads // len(plan.tie_breaks)
    pooled = {"key": [], "value": []}
    for g, order in enumerate(plan.tie_breaks):
        pooling, levels = pooling_matrices(significance_ranks(flat, tie_break_position(order, plan.shape, flat.device)),
                                           pool_weight, plan)
        heads_g = slice(g * per_group, (g + 1) * per_group)
        for name, tokens, bias in (("key", key, key_bias), ("value", value, value_bias)):
            merged = torch.matmul(pooling[:, None], tokens[:, heads_g].reshape(batch, per_group, n, -1))
            if bias is not None:  # (levels, H, D) -> (H_g, keys, D)
                merged = merged + torch.matmul(levels, bias[:, heads_g].transpose(0, 1))
            pooled[name].append(merged)
    out = dense_attention(query.reshape(batch, heads, n, -1), torch.cat(pooled["key"], 1),
                          torch.cat(pooled["value"], 1), scale=scale)
    return out.reshape(*query.shape[:-1], value.shape[-1])

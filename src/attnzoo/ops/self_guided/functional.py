"""Self-guided attention of SG-Former (Ren et al., "SG-Former: Self-guided Transformer with Evolving Token
Reallocation", ICCV 2023, arXiv 2308.12216, section 3.2): keys and values reallocated by a significance map.

The queries keep full resolution; the keys and values are merged by significance (the importance-guided
aggregation module): pixels ranked by ascending significance are cut into groups of ``group_sizes`` pixels,
and group ``l`` is merged ``rates[l]`` consecutive-in-rank pixels -> 1 token with learned weights ``w_l``
(``rates[l]`` of them, shared by every channel and head) and a per-level bias, so that significant regions
keep fine tokens and minor regions few coarse ones (the paper's ``r_1 > ... > r_n``)::

    K~_t = sum_{j < r_l} w_l[j] K_{pi(S_l + r_l·u + j)} + B_k[l],   t = T_l + u   (V~ likewise)
    O_i  = softmax_t( q_i · K~_t · scale ) V~_t

with ``pi`` the significance order (``S_l`` the first rank of level ``l``, ``T_l`` its first merged token).
Equal significances are ordered by row-major position for the head groups with tie break ``"row"`` and by
column-major position for ``"column"`` (stable sorts; NaN ranks last). The official code
(``OliverRensu/SG-Former`` ``sgformer.py``, ``Attention`` with ``mask=True``, read) sorts the same map flattened
row-major (``mask_1``) for the first ``h/2`` heads and column-major (``mask_2``) for the others with
``torch.sort``, whose order among equal values is unspecified (on CPU, torch 2.13, not the stable order): the
two orderings differ only in ties, and here ties are broken deterministically. It merges the layer's *input*
with ``nn.Linear(rate, 1)`` and then projects; this op merges projected keys and values, the same by linearity:
:class:`attnzoo.layers.SelfGuidedAttention` passes ``K = x W_k`` and ``B_k[l] = b_l · W_k 1 + c_k``. Official
levels: sr 8 -> group sizes ``N/4, N/2, N/4`` with rates 196, 56, 28 (60 keys at 56²); sr 4 -> rates 49, 14, 7
(60 keys at 28²); sr 2 -> ``N/2, N/2`` with rates 2, 1. The paper (read only through secondary summaries; its
text was out of reach) describes ``n`` sub-regions of the sorted map with rates ``r_1 > ... > r_n``; the code's
groups are unequal (a quarter, a half, a quarter), which this op and the layer follow (any ``group_sizes``).

Layout ``(B, H, X, Y, D)``; ``significance`` ``(B, X, Y)``, any real dtype (only its order matters, no gradient
flows to it); ``pool_weight`` ``(sum_l rates[l],)`` the levels' weights concatenated; ``key_bias`` /
``value_bias`` ``(levels, H, D)`` / ``(levels, H, Dv)``. Non-causal.

Implementations: ``gathered`` (stable sorts + one gather + reshape-and-weight + SDPA; O(N log N + N·keys·D))
and ``reference`` (ranks by explicit pairwise comparison, explicit ``keys x N`` pooling matrix, dense
attention). Verified (tests/test_sg_former.py): every pixel its own key (rates 1, weight 1) is dense attention;
uniform significance is attention over average-pooled raster runs; exact ties; the official ``Attention``
(``mask=True``) transcribed with copied weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.ops.self_guided.plan import TIE_BREAKS, Reallocation
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import ArgumentTypeError, check_qkv, check_scale, check_tensor_like, empty_output, is_int

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "self_guided_attention"


def check_int_sequence(name: str, value: Sequence[int]) -> tuple[int, ...]:
    """``value`` as a tuple of ints >= 1 (a non-empty sequence, not a string)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or not all(
            is_int(v) for v in value):
        raise ArgumentTypeError(f"{name}={value!r}: expected a non-empty sequence of ints >= 1")
    if min(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a non-empty sequence of ints >= 1")
    return tuple(value)


def reallocation(shape: tuple[int, int], group_sizes: Sequence[int], rates: Sequence[int],
                 tie_breaks: Sequence[str], heads: int) -> Reallocation:
    """Validated plan: group sizes adding up to the pixels, one rate per group dividing it, tie breaks from
    :data:`TIE_BREAKS` whose count divides the heads."""
    sizes, factors = check_int_sequence("group_sizes", group_sizes), check_int_sequence("rates", rates)
    n = shape[0] * shape[1]
    if sum(sizes) != n:
        raise ValueError(f"group_sizes={group_sizes!r}: expected sizes adding up to the X·Y = {shape[0]}·{shape[1]} "
                         f"= {n} pixels, got {sum(sizes)}")
    if len(factors) != len(sizes):
        raise ValueError(f"rates={rates!r}: expected one rate per group, {len(sizes)} (group_sizes={group_sizes!r})")
    for level, (size, rate) in enumerate(zip(sizes, factors)):
        if size % rate:
            raise ValueError(f"rates={rates!r}: expected each rate to divide its group's size; group {level} has "
                             f"{size} pixels, rate {rate} (group_sizes={group_sizes!r})")
    if isinstance(tie_breaks, str) or not isinstance(tie_breaks, Sequence) or not tie_breaks or any(
            t not in TIE_BREAKS for t in tie_breaks):
        raise ArgumentTypeError(f"tie_breaks={tie_breaks!r}: expected a non-empty sequence of {TIE_BREAKS}")
    if heads % len(tie_breaks):
        raise ValueError(f"tie_breaks={tie_breaks!r}: expected a number of head groups dividing the {heads} heads")
    return Reallocation(tuple(shape), sizes, factors, tuple(tie_breaks))


def _check_significance(significance: torch.Tensor, query: torch.Tensor) -> None:
    expected = (query.shape[0], *query.shape[2:4])
    if not isinstance(significance, torch.Tensor):
        raise TypeError(f"significance must be a torch.Tensor, got {type(significance).__name__}")
    if tuple(significance.shape) != expected:
        raise ValueError(f"significance has shape {tuple(significance.shape)}; expected (B, X, Y) = {expected}")
    if significance.dtype == torch.bool or significance.is_complex():
        raise TypeError(f"significance.dtype={significance.dtype}; expected a real (floating or integer) dtype")
    if significance.device != query.device:
        raise ValueError(f"significance is on {significance.device}; expected the query's device {query.device}")


def self_guided_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, significance: torch.Tensor,
                          group_sizes: Sequence[int], rates: Sequence[int], pool_weight: torch.Tensor,
                          key_bias: torch.Tensor | None = None, value_bias: torch.Tensor | None = None, *,
                          tie_breaks: Sequence[str] = ("row",), scale: float | None = None,
                          impl: str = "auto") -> torch.Tensor:
    """Self-guided attention. ``query``, ``key`` ``(B, H, X, Y, D)``, ``value`` ``(B, H, X, Y, Dv)``,
    ``significance`` ``(B, X, Y)`` -> ``(B, H, X, Y, Dv)``.

    ``group_sizes``: pixels per significance level, least significant first, adding up to ``X·Y``; ``rates``:
    pixels merged into one token per level, each dividing its group; ``pool_weight``: ``(sum(rates),)`` merge
    weights, level by level; ``key_bias`` / ``value_bias``: optional ``(levels, H, D)`` / ``(levels, H, Dv)``
    added to each level's merged keys / values; ``tie_breaks``: ``"row"`` / ``"column"`` per head group (the
    heads split evenly), how equal significances are ordered; ``scale`` defaults to ``D ** -0.5``; ``impl``:
    ``"auto"``, ``"gathered"`` or ``"reference"``. Time O(N log N + N · keys · D).

    >>> import torch
    >>> from attnzoo.ops import self_guided_attention
    >>> q = k = v = torch.randn(1, 2, 8, 8, 16)
    >>> significance = torch.rand(1, 8, 8)
    >>> weights = torch.cat([torch.full((4,), 1 / 4), torch.full((2,), 1 / 2), torch.ones(1)])
    >>> out = self_guided_attention(q, k, v, significance, (16, 32, 16), (4, 2, 1), weights,
    ...                             tie_breaks=("row", "column"))  # 4 + 16 + 16 = 36 keys
    >>> out.shape
    torch.Size([1, 2, 8, 8, 16])
    """
    check_qkv(query, key, value, spatial_dims=2, layout=LAYOUT)
    _check_significance(significance, query)
    heads = query.shape[1]
    plan = reallocation(tuple(query.shape[2:4]), group_sizes, rates, tie_breaks, heads)
    check_tensor_like("pool_weight", pool_weight, (sum(plan.rates),), query)
    levels = len(plan.rates)
    if key_bias is not None:
        check_tensor_like("key_bias", key_bias, (levels, heads, query.shape[-1]), query)
    if value_bias is not None:
        check_tensor_like("value_bias", value_bias, (levels, heads, value.shape[-1]), query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    tensors = [t for t in (query, key, value, pool_weight, key_bias, value_bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    if query.shape[0] == 0 or heads == 0:
        return empty_output(query, key, value) + sum(t.sum() for t in tensors[3:]) * 0
    return implementation.fn(query, key, value, significance, pool_weight, key_bias, value_bias, plan=plan,
                             scale=scale)

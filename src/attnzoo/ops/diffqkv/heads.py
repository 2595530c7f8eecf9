"""DiffQKV's head sharing and KV-cache cost (Sigma, arXiv 2501.13629, Sections 2 and 3.1).

GroupSharing (Eq. 3, FlexHeadFA): query head ``i`` of ``n_hq`` reads key head ``⌊i · n_hk / n_hq⌋`` and value head
``⌊i · n_hv / n_hq⌋``, K and V shared independently. The rule enforced here: ``n_hk`` and ``n_hv`` each divide
``n_hq`` (every configuration of the paper does: 32 query heads over 1, 4, 16 or 32 K/V heads). Then each K (V)
head serves a contiguous group of ``n_hq / n_hk`` (``n_hq / n_hv``) query heads, the mapping equals
``repeat_interleave`` of the K (V) heads, and the fast path can fold a group into one batched GEMM. Eq. 3 itself is
defined for any counts, but with counts that do not divide the groups are uneven (6 query heads over 4 K heads:
0, 0, 1, 2, 2, 3), which no paper configuration and no FlashAttention kernel uses; they are refused, not guessed.
"""

from __future__ import annotations

import torch

from attnzoo.validation import check_int


def check_shared_heads(name: str, heads: int, query_heads: int, what: str = "heads") -> None:
    """``heads`` (K or V heads, the argument ``name``) must be a divisor of the ``query_heads``."""
    if heads < 1 or query_heads % heads:
        raise ValueError(f"{name} has {heads} {what} and the query {query_heads}; expected a divisor of the query's "
                         f"{query_heads} (query head i reads {name} head floor(i * {heads} / {query_heads}), Sigma "
                         "Eq. 3, in equal groups)")


def shared_head_index(query_heads: int, heads: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(query_heads,)``: the K (or V) head each query head reads, ``⌊i · heads / query_heads⌋`` (Eq. 3)."""
    return torch.div(torch.arange(query_heads, device=device) * heads, query_heads, rounding_mode="floor")


def kv_cache_bytes_per_token(num_k_heads: int, head_dim_k: int, num_v_heads: int, head_dim_v: int,
                             dtype: torch.dtype = torch.float16, num_layers: int = 1) -> int:
    """Bytes the KV cache of one sequence grows by per token: ``num_layers · (n_hk · d_hk + n_hv · d_hv)`` elements
    of ``dtype``, the element count of Sigma's cost model ``L = α · b · s · (n_hk d_hk + n_hv d_hv) + β`` (Eq. 1)
    at ``b = s = 1`` with ``α`` the bytes per element and ``β = 0``.

    MHA with ``H`` heads of ``d``: ``2 H d``; GQA / MQA with ``G`` (1) K/V heads: ``2 G d``; Sigma-1.5B (K 4 x 64,
    V 16 x 64, Section 3.1) against its GQA baseline (16 x 64 each): 1280 against 2048 elements, the 37.5% of Eq. 2.

    >>> kv_cache_bytes_per_token(4, 64, 16, 64, torch.bfloat16, num_layers=26)
    66560
    """
    counts = {"num_k_heads": num_k_heads, "head_dim_k": head_dim_k, "num_v_heads": num_v_heads,
              "head_dim_v": head_dim_v, "num_layers": num_layers}
    for name, value in counts.items():
        check_int(name, value)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype={dtype!r}: expected a torch.dtype (the cache's element type)")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return num_layers * (num_k_heads * head_dim_k + num_v_heads * head_dim_v) * itemsize

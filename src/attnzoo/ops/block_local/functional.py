"""Block-local attention (Ho et al., "Block Transformer: Global-to-Local Language Modeling for Fast Inference",
NeurIPS 2024, arXiv 2406.02657): the attention of the token decoder, causal inside blocks of ``block_size``
positions, optionally with a bidirectional prefix at the start of each block (:mod:`.pattern`).

Implementations: ``blocked`` (reshape into blocks + batched SDPA, forward and backward, ``O(N · S · D)``) and
``reference`` (dense scores + explicit mask, every drop-in feature). Verified: ``blocked`` against the reference
forward and backward (float64 and float32, the contract's awkward cases); the limits (``S >= N``, ``P = 0``: causal
SDPA; ``S = 1``: the values; ``P = S >= N``: full SDPA; each block alone: causal SDPA on that block) and the
official token decoder's per-block causal attention in ``tests/test_block_local.py``.
"""

from __future__ import annotations

import torch

from attnzoo.ops.block_local.pattern import BlockLocalPattern
from attnzoo.ops.dropin import check_dropin
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_int, check_scale

VARIANT_NAME = "block_local_attention"


def check_block(block_size: int, num_prefix_tokens: int) -> tuple[int, int]:
    """``block_size >= 1`` and ``0 <= num_prefix_tokens <= block_size``."""
    check_int("block_size", block_size)
    check_int("num_prefix_tokens", num_prefix_tokens, 0)
    if num_prefix_tokens > block_size:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens}: expected at most block_size={block_size} (the "
                         "prefix is the first positions of each block)")
    return block_size, num_prefix_tokens


def block_local_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, block_size: int,
                          num_prefix_tokens: int = 0, scale: float | None = None, impl: str = "auto", *,
                          attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                          cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False, dropout_p: float = 0.0,
                          return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention inside consecutive blocks of ``block_size`` positions: ``(B, Hq, Nq, D)`` queries,
    ``(B, Hkv, Nk, D)`` keys, ``(B, Hkv, Nk, Dv)`` values -> ``(B, Hq, Nq, Dv)``.

    Query ``i`` sees key ``j`` when both lie in the same block and ``j <= i`` or ``j`` is among the first
    ``num_prefix_tokens`` positions of the block (0: causal inside each block, the Block Transformer's token
    decoder; ``> 0``: a bidirectional prefix per block, not causal). Blocks are counted from key index 0 and the
    last one may be shorter. ``impl``: ``"auto"``, ``"blocked"`` or ``"reference"``. Time ``O(N · S · D)``.

    Drop-in options (:mod:`attnzoo.ops.dropin`): keys longer than the queries (the queries are the last ``Nq``
    positions: a decode step against the keys of its current block) and grouped K/V heads run on ``blocked``;
    ``attn_mask``, ``key_padding_mask``, packed ``cu_seqlens`` (blocks counted per sequence), ``dropout_p`` and
    ``return_weights`` on the reference.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 10, 8)
    >>> out = block_local_attention(q, k, v, block_size=4)       # blocks [0, 4), [4, 8), [8, 10)
    >>> causal = torch.nn.functional.scaled_dot_product_attention(q[:, :, 4:8], k[:, :, 4:8], v[:, :, 4:8],
    ...                                                           is_causal=True)
    >>> torch.allclose(out[:, :, 4:8], causal, atol=1e-6)
    True
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    pattern = BlockLocalPattern(key.shape[2], *check_block(block_size, num_prefix_tokens))
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value], features=dropin.features, length=key.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        weights = query.new_zeros(*query.shape[:-1], key.shape[2])
        return (out, weights) if return_weights else out
    return implementation.fn(query, key, value, pattern=pattern, scale=scale, dropin=dropin)

"""Block-local attention layer (Block Transformer, arXiv 2406.02657): the token mixer of the Block Transformer's
token decoder, ``(B, N, C) -> (B, N, C)``, attention inside consecutive blocks of ``block_size`` tokens
(:func:`attnzoo.ops.block_local_attention`).

On its own (``attnzoo.create("block_local_attention")``, a mixer of the causal language model) it is a
block-diagonal causal mixer: a token sees only the earlier tokens of its block, nothing before it, the local half
of the Block Transformer without its global block decoder (:class:`attnzoo.models.BlockTransformer` adds that).
"""

from __future__ import annotations

import torch

from attnzoo.layers.cache import BlockLocalKVCache, layer_place
from attnzoo.layers.sliding_window import SequenceAttention
from attnzoo.ops.block_local.functional import block_local_attention, check_block
from attnzoo.validation import check_flag


class BlockLocalAttention(SequenceAttention):
    """Multi-head attention inside blocks of ``block_size`` tokens: one ``qkv`` Linear, ``num_heads`` heads,
    :func:`attnzoo.ops.block_local_attention`, an output projection. Time ``O(N · block_size · C)``.

    ``num_prefix_tokens`` > 1 makes the first positions of every block a bidirectional prefix (a prefix LM per
    block), which reads later tokens: it needs ``is_causal=False`` (a causal model refuses such a layer).
    ``forward`` takes ``key_padding_mask`` and ``cu_seqlens`` (run by the reference implementation).

    Decoding: ``new_cache`` makes a :class:`~attnzoo.layers.cache.BlockLocalKVCache` holding the keys and values
    of the current block only (at most ``block_size - 1`` tokens between calls), so a step costs
    ``O(block_size · C)`` whatever the length.
    """

    cache_kind = BlockLocalKVCache

    def __init__(self, dim: int, num_heads: int = 1, block_size: int = 16, num_prefix_tokens: int = 0,
                 is_causal: bool = True, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias, scale, impl)
        self.block_size, self.num_prefix_tokens = check_block(block_size, num_prefix_tokens)
        self.is_causal = check_flag("is_causal", is_causal)
        if is_causal and num_prefix_tokens > 1:
            raise ValueError(f"num_prefix_tokens={num_prefix_tokens}: expected at most 1 with is_causal=True (a "
                             "prefix of more positions is bidirectional, its first tokens read later ones); pass "
                             "is_causal=False for a prefix LM per block")

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> BlockLocalKVCache:
        """An empty :class:`~attnzoo.layers.cache.BlockLocalKVCache` (dtype and device default to the layer's).
        With a bidirectional prefix every call must end outside a block's prefix (the cache checks it)."""
        dtype, device = layer_place(self, dtype, device)
        return BlockLocalKVCache(self, batch_size, self.num_heads, self.head_dim, self.block_size,
                                 self.num_prefix_tokens, dtype=dtype, device=device, max_length=max_length)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **masks: torch.Tensor
               ) -> torch.Tensor:
        return block_local_attention(query, key, value, self.block_size, self.num_prefix_tokens, self.scale,
                                     self.impl, **masks)

"""Block-local attention (Block Transformer, Ho et al. 2024, arXiv 2406.02657): the token decoder's attention,
causal inside consecutive blocks, optionally with a bidirectional prefix per block."""

from attnzoo.ops.block_local.functional import block_local_attention
from attnzoo.ops.block_local.pattern import BlockLocalPattern, block_local_mask_mod

__all__ = ["BlockLocalPattern", "block_local_attention", "block_local_mask_mod"]

"""Block-local attention as a mask function: the attention pattern of the Block Transformer's token decoder
(Ho et al. 2024, arXiv 2406.02657, Section 2.3).

The sequence is cut into consecutive blocks of ``block_size`` positions (the last one may be shorter), counted
from key index 0. A query sees the keys of its own block that are not later than itself, and the first
``num_prefix_tokens`` positions of its block (the block's prefix) whatever their order::

    visible(i, j) = (i // S == j // S) and (j <= i or j mod S < P)

``P = 0`` is causal attention inside each block: what the official token decoder runs on each block's input
``[prefix vectors, tokens]`` (GPT-NeoX's causal mask over the whole local sequence, so the prefix vectors attend
causally among themselves too). ``P > 0`` makes the prefix bidirectional (a prefix LM per block) and the pattern
no longer causal in sequence order. Limits: ``S >= N`` with ``P = 0`` is causal dense attention; ``S = 1`` is
``out_i = v_i``; ``P = S >= N`` is full bidirectional attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnzoo.masks import MaskMod


def block_local_mask_mod(block_size: int, num_prefix_tokens: int) -> MaskMod:
    """``(i // S == j // S) & (j <= i | j mod S < P)`` with ``S = block_size``, ``P = num_prefix_tokens``."""

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        same_block = q_idx // block_size == kv_idx // block_size
        return same_block & ((kv_idx <= q_idx) | (kv_idx % block_size < num_prefix_tokens))

    return mask_mod


@dataclass(frozen=True)
class BlockLocalPattern:
    """Block-local attention over ``length`` key positions: blocks of ``block_size``, ``num_prefix_tokens``
    bidirectional prefix positions at the start of each block."""

    length: int
    block_size: int
    num_prefix_tokens: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def num_tokens(self) -> int:
        return self.length

    @property
    def is_causal(self) -> bool:
        """Whether no query sees a later position (no prefix, or a prefix of one position)."""
        return self.num_prefix_tokens <= 1

    def block_mask(self, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(size, size)`` bool: the pattern inside one block of ``size <= block_size`` positions."""
        i = torch.arange(size, device=device)
        return self.mask_mod()(i.new_zeros(()), i.new_zeros(()), i[:, None], i[None, :])

    def mask_mod(self) -> MaskMod:
        return block_local_mask_mod(self.block_size, self.num_prefix_tokens)

"""The decoding cache of the Block Transformer (arXiv 2406.02657): a :class:`~attnzoo.models.generation.ModelCache`
whose layer caches are one :class:`~attnzoo.layers.cache.KVCache` over the block embeddings per block-decoder layer
and one :class:`~attnzoo.layers.cache.BlockLocalKVCache` (the current block's local sequence only) per
token-decoder layer, plus the ids of the current block's tokens (at most ``L_B - 1``: a block is embedded once its
last token arrives).

Sizes after ``T`` tokens (per sequence; ``S = R + L_B - 1`` local positions): the block decoder holds
``T // L_B + 1`` entries per layer (the start vector and every complete block), the token decoder
``(R + T mod L_B) mod S < S`` entries per layer, independent of ``T``. A vanilla decoder holds ``T`` entries in
every layer, so with the layers split evenly the Block Transformer's KV cache is about ``2 L_B`` times smaller at
long contexts (``L_B`` times per block-decoder layer, the token decoder's a constant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from attnzoo.layers.cache import LayerCache
from attnzoo.models.generation import ModelCache
from attnzoo.validation import check_int, check_optional_int

if TYPE_CHECKING:
    from attnzoo.models.block_transformer import BlockTransformer


class BlockTransformerCache(ModelCache):
    """Block- and token-decoder layer caches (``block_layers``, ``token_layers``; ``layers`` is both, in that order),
    ``pending`` ``(B, length mod L_B)`` token ids of the unfinished block, and ``length``, the tokens consumed.
    ``nbytes`` counts every tensor held (the ids too); ``nbytes_at(length)`` is the same after ``length`` tokens."""

    def __init__(self, model: nn.Module, block_layers: Sequence[LayerCache], token_layers: Sequence[LayerCache],
                 block_length: int, prefix_length: int, max_length: int | None = None) -> None:
        super().__init__(model, [*block_layers, *token_layers], max_length)
        self.block_layers, self.token_layers = list(block_layers), list(token_layers)
        self.block_length = check_int("block_length", block_length)
        self.prefix_length = check_int("prefix_length", prefix_length)
        self.pending = torch.zeros(self.batch_size, 0, dtype=torch.long, device=self.device)

    @classmethod
    def for_model(cls, model: BlockTransformer, batch_size: int, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None, max_length: int | None = None) -> BlockTransformerCache:
        """An empty cache for ``model`` (dtype and device default to its parameters'); ``max_length`` (tokens)
        defaults to its ``max_position_embeddings`` and cannot exceed it."""
        check_int("batch_size", batch_size)
        check_optional_int("max_length", max_length)
        limit = model.max_sequence_length
        if limit is not None and max_length is not None and max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's max_position_embeddings={limit}")
        max_length = limit if max_length is None else max_length
        weight = model.token_embedding.weight
        dtype = weight.dtype if dtype is None else dtype
        device = weight.device if device is None else torch.device(device)
        blocks = None if max_length is None else max_length // model.block_length + 1

        def caches(decoder: nn.ModuleList, length: int | None) -> list[LayerCache]:
            return [block.mixer.new_cache(batch_size, dtype=dtype, device=device, max_length=length)
                    for block in decoder]

        return cls(model, caches(model.block_decoder, blocks), caches(model.token_decoder, None),
                   model.block_length, model.prefix_length, max_length)

    @property
    def local_length(self) -> int:
        """``S = R + L_B - 1``: the positions of one block's local sequence."""
        return self.prefix_length + self.block_length - 1

    def block_entries(self, length: int) -> int:
        """Block-decoder entries per layer after ``length`` tokens: the start vector and the complete blocks."""
        return length // self.block_length + 1 if check_int("length", length, 0) else 0

    def stream_length(self, length: int) -> int:
        """Positions the token decoder has read after ``length`` tokens: ``S`` per complete block, then the current
        block's prefix and its tokens but the last (0 before the first call)."""
        if not check_int("length", length, 0):
            return 0
        return length // self.block_length * self.local_length + self.prefix_length + length % self.block_length

    def token_entries(self, length: int) -> int:
        """Token-decoder entries per layer after ``length`` tokens: the current block's prefix and tokens,
        ``(R + length mod L_B) mod S < S`` (none when the block's first ``L_B - 1`` tokens complete its local
        sequence: its last token never enters the token decoder, it brings the next block's prefix)."""
        return self.stream_length(length) % self.local_length

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.pending.numel() * self.pending.element_size()

    def nbytes_at(self, length: int) -> int:
        """Bytes held (whole batch) once ``length`` tokens are consumed."""
        blocks, local = self.block_entries(length), self.stream_length(length)
        ids = self.batch_size * (length % self.block_length) * self.pending.element_size()
        return (sum(layer.nbytes_at(blocks) for layer in self.block_layers)
                + sum(layer.nbytes_at(local) for layer in self.token_layers) + ids)

    @property
    def bytes_per_token(self) -> float:
        """Bytes per sequence the cache grows by per token, on average: the block decoder's bytes per entry over
        ``L_B`` (the token decoder's cache does not grow)."""
        return sum(layer.bytes_per_token for layer in self.block_layers) / self.block_length

    def _check_layers(self, model: nn.Module) -> None:
        found = (len(self.block_layers), len(self.token_layers))
        expected = (len(model.block_decoder), len(model.token_decoder))
        if found != expected:
            raise ValueError(f"cache has {found[0]} block-decoder and {found[1]} token-decoder layer caches; the "
                             f"model has {expected[0]} and {expected[1]} layers")

    def __repr__(self) -> str:
        return (f"BlockTransformerCache(block_layers={len(self.block_layers)}, token_layers={len(self.token_layers)}, "
                f"batch_size={self.batch_size}, dtype={self.dtype}, device={self.device}, length={self.length}, "
                f"max_length={self.max_length}, nbytes={self.nbytes})")

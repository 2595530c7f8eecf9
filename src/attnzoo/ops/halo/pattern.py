"""HaloNet's blocked local pattern (arXiv 2103.12731), written once: which keys each query sees, and at which offset.

The image is cut into ``b x b`` query blocks; block ``(I, J)`` attends to the ``w x w`` window, ``w = b + 2h``,
centred on it (rows ``[I·b - h, I·b + b + h)``, likewise for columns). With query stride ``s`` (``s | b``) the
queries are the pixels ``(s·i, s·j)`` and each block holds ``(b/s)^2`` of them. The relative position term
reads row ``key - query + h + w - 1`` of the ``(2w - 1, D)`` tables: exactly timm's ``rel_logits_1d`` layout
at stride 1 (there a key at window slot ``k`` seen from block slot ``t`` reads ``k - t + w - 1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attnzoo.masks import MaskMod, unflatten_index


def halo_rel_index(query_pixel: torch.Tensor, key_pixel: torch.Tensor, halo_size: int, window: int) -> torch.Tensor:
    """Row of the ``(2w - 1, D)`` table for a key seen from a query on one axis, clamped to the table.

    Visible pairs satisfy ``-(b - 1) - h <= key - query <= b - 1 + h``, so they read rows within
    ``[2h, 2w - 2]``; pairs that every caller masks out are clamped, never out of bounds.
    """
    return torch.clamp(key_pixel - query_pixel + halo_size + window - 1, 0, 2 * window - 2)


def position_logits(query: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """One axis of the factorised position term: ``out[..., i, j] = query[..., i, :] · table[index[i, j]]``.

    ``query (..., Nq, D)``, ``table (2w - 1, D)``, ``index (Nq, Nk)`` -> ``(..., Nq, Nk)``; costs one
    ``Nq x D x (2w - 1)`` GEMM and a gather (the AA-Net / SASA relative logits that timm's ``rel_logits_1d``
    computes with a pad-and-reshape trick).
    """
    logits = torch.matmul(query, table.transpose(0, 1))
    return logits.gather(-1, index.expand(*logits.shape[:-1], index.shape[-1]))


@dataclass(frozen=True)
class HaloPattern:
    """Blocked local attention with halos on an image of ``shape`` (keys), queries every ``stride`` pixels."""

    shape: tuple[int, int]
    block_size: int
    halo_size: int
    stride: int = 1

    @property
    def window(self) -> int:
        """Side ``w = b + 2h`` of each block's key window."""
        return self.block_size + 2 * self.halo_size

    @property
    def query_shape(self) -> tuple[int, int]:
        """The grid of queries: the image subsampled by ``stride``."""
        return (self.shape[0] // self.stride, self.shape[1] // self.stride)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    def pixels(self, q_idx: torch.Tensor, kv_idx: torch.Tensor, key_shape: Sequence[int] | None = None,
               key_offset: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per axis, the image coordinates ``(query, key)`` of flat query and key indices.

        Keys index a grid of ``key_shape`` (default: the image) whose position ``p`` is image pixel
        ``p - key_offset`` (a zero-padded grid has ``key_offset = halo``).
        """
        key_shape = self.shape if key_shape is None else key_shape
        return [(qc * self.stride, kc - key_offset) for qc, kc in
                zip(unflatten_index(q_idx, self.query_shape), unflatten_index(kv_idx, key_shape))]

    def mask_mod(self, key_shape: Sequence[int] | None = None, key_offset: int = 0) -> MaskMod:
        """A key is visible when, on both axes, it lies in the window of the query's block.

        On the image grid (the default) every key is a real pixel; on a padded ``key_shape`` the window also
        covers padding pixels, which is what timm attends to (``mask_padding=False``).
        """
        b, h = self.block_size, self.halo_size

        def mask_mod(batch: torch.Tensor, head: torch.Tensor, q_idx: torch.Tensor,
                     kv_idx: torch.Tensor) -> torch.Tensor:
            visible = None
            for query, key in self.pixels(q_idx, kv_idx, key_shape, key_offset):
                start = query // b * b
                axis = (key >= start - h) & (key < start + b + h)
                visible = axis if visible is None else visible & axis
            return visible

        return mask_mod

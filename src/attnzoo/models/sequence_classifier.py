"""A small sequence classifier whose token mixer is any ``(B, N, C)`` mixer (pixel-by-pixel classification).

As the sequential-image benchmarks (sequential MNIST, LRA's Image task): each of the ``seq_len`` elements
(e.g. the 784 pixels of a Fashion-MNIST image, scaled to ``[0, 1]``) is embedded by one linear map, learned
positions are added (or not: convolutions, decays and recurrences carry order themselves), ``depth`` pre-norm
:class:`~attnzoo.models.block.Block` s mix the tokens, a final norm, then the mean over the tokens (or the
last token, for a causal model) feeds a linear head. Size options the mixer takes (``seq_len``, ``l_max``,
``max_len``) are filled with ``seq_len`` unless ``mixer_kwargs`` passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from attnzoo.models.block import Block
from attnzoo.models.mixers import SEQUENCE_LAYOUT, SOFTMAX, mixer_factory
from attnzoo.validation import per_axis

POOLS = ("mean", "last")


class SequenceClassifier(nn.Module):
    """Linear element embedding (+ learned positions) -> ``depth`` pre-norm blocks -> norm -> pool -> head.

    Args:
        seq_len: sequence length ``N`` every input must have.
        num_classes: number of classes.
        dim: model width.
        depth: number of blocks.
        mixer: ``"softmax"`` or a ``(B, N, C)`` registry variant.
        mixer_kwargs: keyword arguments of the mixer layer (``dim`` is the model's).
        in_features: features per element (1 for pixels).
        mlp_ratio: MLP hidden width / ``dim``; ``0`` drops the MLP.
        pool: ``"mean"`` over the tokens or the ``"last"`` token (needs ``causal=True``: only then has the last
            token, and only it, seen the whole sequence for every mixer).
        causal: require a causal mixer (checked as in the causal language model; ``"softmax"`` is then masked).
        learned_positions: add a learned ``(seq_len, dim)`` position embedding; ``False`` for mixers that
            carry order themselves.

    Cost per sequence: ``O(N C²)`` per block plus the mixer's own (``O(N² C)`` for softmax).
    """

    def __init__(self, seq_len: int, num_classes: int, dim: int = 64, depth: int = 2, mixer: str = SOFTMAX,
                 mixer_kwargs: Mapping[str, Any] | None = None, in_features: int = 1, mlp_ratio: float = 2.0,
                 pool: str = "mean", causal: bool = False, learned_positions: bool = True) -> None:
        super().__init__()
        for name, value in (("seq_len", seq_len), ("num_classes", num_classes), ("dim", dim), ("depth", depth),
                            ("in_features", in_features)):
            per_axis(value, 1, name)
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r}: expected one of {list(POOLS)}")
        if pool == "last" and not causal:
            raise ValueError("pool='last' needs causal=True (a non-causal mixer's last token need not summarise "
                             "the sequence); use pool='mean' or causal=True")
        self.seq_len, self.in_features, self.pool = seq_len, in_features, pool
        build = mixer_factory(mixer, dim, mixer_kwargs, layouts=(SEQUENCE_LAYOUT,), causal=causal,
                              grid=(seq_len,))
        self.mixer_name = mixer
        self.embedding = nn.Linear(in_features, dim)
        self.position_embedding = nn.Parameter(torch.empty(1, seq_len, dim)) if learned_positions else None
        if self.position_embedding is not None:
            nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, build(), mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs``: float ``(B, N, in_features)`` (or ``(B, N)`` if ``in_features == 1``), ``N = seq_len``
        -> logits ``(B, num_classes)``."""
        expected = [(self.seq_len, self.in_features)] + ([(self.seq_len,)] if self.in_features == 1 else [])
        if tuple(inputs.shape[1:]) not in expected:
            flat = f" or (B, {self.seq_len})" if self.in_features == 1 else ""
            raise ValueError(f"inputs has shape {tuple(inputs.shape)}; expected (B, N, in_features) = "
                             f"(B, {self.seq_len}, {self.in_features}){flat} with N = seq_len")
        if not inputs.is_floating_point():
            raise TypeError(f"inputs.dtype={inputs.dtype}; expected a floating dtype (scale the values first)")
        x = self.embedding(inputs.reshape(*inputs.shape[:2], self.in_features))
        if self.position_embedding is not None:
            x = x + self.position_embedding
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1) if self.pool == "mean" else x[:, -1])

"""ConViT's gated positional self-attention layer (arXiv 2103.10697), following the official ``GPSA``
(facebookresearch/convit ``convit.py``; timm's ``timm/models/convit.py`` is the same module)."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.gpsa.functional import gpsa_attention
from attnzoo.ops.gpsa.positions import local_init_weights, nonlocality
from attnzoo.validation import check_flag, check_real


class GatedPositionalSelfAttention(ShowsOptions, nn.Module):
    """GPSA on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``: ``[q, k] = x W_qk``, ``v = x W_v``, heads
    of ``dim / num_heads`` channels, per-head position weights ``pos_weight`` ``(num_heads, 3)`` and gating
    parameters ``gating_param`` (init 1, so ``σ(1) ≈ 0.73`` of the attention starts on position), then
    :func:`attnzoo.ops.gpsa_attention` and the output projection.

    Init as the official code: projections truncated normal (std 0.02, biases 0), then with ``use_local_init``
    (default) the locality init: ``W_v = I`` and the heads placed on a ``√H x √H`` grid of offsets with
    strength ``locality_strength`` (``α``, ``≥ 0``; :func:`~attnzoo.ops.gpsa.positions.local_init_weights`);
    ``num_heads`` must then be a perfect square. Differences: the official ``pos_proj = nn.Linear(3, H)`` has a
    bias, dropped here (a per-head constant added to every logit of a row cancels in the softmax: timm's output
    with a random bias is matched in ``tests/test_gpsa.py``); no attention / projection dropout (ConViT trains
    with 0); any ``H x W`` grid, not only square ones. The token grid is the input's, flattened row-major.
    """

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = False, locality_strength: float = 1.0,
                 use_local_init: bool = True, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        check_flag("qkv_bias", qkv_bias)
        check_flag("use_local_init", use_local_init)
        self.locality_strength = check_real("locality_strength", locality_strength, inclusive=True)
        if use_local_init and math.isqrt(num_heads) ** 2 != num_heads:
            raise ValueError(f"num_heads={num_heads}: the locality init places the heads on a √H x √H grid of "
                             "offsets; expected a perfect square (1, 4, 9, 16, ...) or use_local_init=False")
        self.impl = impl
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pos_weight = nn.Parameter(torch.empty(num_heads, 3))
        self.gating_param = nn.Parameter(torch.ones(num_heads))
        for weight in (self.qk.weight, self.v.weight, self.proj.weight, self.pos_weight):
            nn.init.trunc_normal_(weight, std=0.02)
        for bias in (self.qk.bias, self.v.bias, self.proj.bias):
            if bias is not None:
                nn.init.zeros_(bias)
        if use_local_init:
            self.local_init()

    @torch.no_grad()
    def local_init(self, locality_strength: float | None = None) -> None:
        """ConViT's locality init (official ``local_init``): ``W_v = I`` and ``pos_weight`` at
        ``locality_strength`` (default: the layer's) on the ``√H x √H`` grid of offsets."""
        strength = self.locality_strength if locality_strength is None else check_real(
            "locality_strength", locality_strength, inclusive=True)
        if math.isqrt(self.num_heads) ** 2 != self.num_heads:
            raise ValueError(f"num_heads={self.num_heads}: the locality init needs a perfect square")
        self.v.weight.copy_(torch.eye(self.dim))
        self.pos_weight.copy_(local_init_weights(self.num_heads, strength))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        q, k = split_heads(self.qk(x), 2 * self.num_heads).chunk(2, dim=1)
        return q, k, split_heads(self.v(x), self.num_heads)

    def _options(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pos_weight": autocast_like(self.pos_weight, q), "gate": autocast_like(self.gating_param, q)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(x)
        return self.proj(merge_heads(gpsa_attention(q, k, v, **self._options(q), impl=self.impl)))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The mixed attention ``(B, num_heads, N, N)`` of input ``x`` ``(B, H, W, C)`` (``N = H · W``)."""
        q, k, v = self._heads(x)
        return gpsa_attention(q, k, v, **self._options(q), return_weights=True, impl="reference")[1]

    def nonlocality(self, x: torch.Tensor) -> torch.Tensor:
        """Per head, the average attention-weighted distance (in patches) over ``x``'s grid, averaged over the
        batch: ``(num_heads,)``, the official ``get_attention_map``."""
        return nonlocality(self.attention_map(x).mean(0), tuple(x.shape[1:3]))

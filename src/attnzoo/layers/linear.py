"""Linear-attention token mixers ``(B, N, C) -> (B, N, C)``: the TransNormerLLM lightning block (paper 54) and
feature-map linear attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.ops.linear.feature_maps import FEATURE_MAPS, random_projection
from attnzoo.ops.lightning.functional import lightning_attention, tnl_slopes
from attnzoo.ops.linear.feature_linear import linear_attention


def _check_input(x: torch.Tensor, dim: int) -> None:
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"input has shape {tuple(x.shape)}; expected (B, N, C={dim})")


class LightningAttention(nn.Module):
    """TransNormerLLM attention block (official ``examples/module/tnl_attn.py``), causal.

    ``q, k, v = SiLU(x W_q), SiLU(x W_k), SiLU(x W_v)`` (no bias); per-head lightning attention with the
    layer-scaled ALiBi slopes :func:`tnl_slopes` (a fixed buffer); ``LayerNorm`` of the merged heads (TNL itself
    uses SRMSNorm); times the low-rank output gate ``σ(x W_1 W_2)`` (``dim -> head_dim -> dim``, no activation
    between); ``o_proj``. ``block_size`` and ``impl`` go to :func:`lightning_attention`.
    """

    def __init__(self, dim: int, num_heads: int, layer_idx: int = 0, num_layers: int = 12, bias: bool = False,
                 block_size: int = 64, impl: str = "auto") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.block_size, self.impl = dim, num_heads, block_size, impl
        head_dim = dim // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim, bias=bias) for _ in range(4))
        self.norm = nn.LayerNorm(dim)
        self.output_gate = nn.Sequential(nn.Linear(dim, head_dim, bias=bias), nn.Linear(head_dim, dim, bias=bias))
        self.register_buffer("slopes", tnl_slopes(num_heads, layer_idx, num_layers).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        q, k, v = (split_heads(F.silu(proj(x)), self.num_heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = lightning_attention(q, k, v, decay=self.slopes.to(q.dtype), block_size=self.block_size, impl=self.impl)
        out = self.norm(merge_heads(out)) * torch.sigmoid(self.output_gate(x))
        return self.o_proj(out)


class LinearAttention(nn.Module):
    """Feature-map linear attention mixer: ``qkv`` projection, heads, :func:`linear_attention`, output projection.

    ``feature_map`` as in :data:`FEATURE_MAPS`; ``"softmax_kernel"`` draws ``num_features`` (default head dim)
    random features from ``seed`` once, as a fixed buffer. Causal by default (a language-model mixer).
    """

    def __init__(self, dim: int, num_heads: int, feature_map: str = "elu", is_causal: bool = True,
                 normalize: bool = True, num_features: int | None = None, seed: int = 0, qkv_bias: bool = False,
                 block_size: int = 64, impl: str = "auto") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={feature_map!r}: expected one of {list(FEATURE_MAPS)}")
        self.dim, self.num_heads, self.feature_map = dim, num_heads, feature_map
        self.is_causal, self.normalize, self.block_size, self.impl = is_causal, normalize, block_size, impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        projection = None
        if feature_map == "softmax_kernel":
            projection = random_projection(dim // num_heads, num_features or dim // num_heads, seed)
        self.register_buffer("projection", projection, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        projection = None if self.projection is None else self.projection.to(q.dtype)
        out = linear_attention(q, k, v, self.feature_map, is_causal=self.is_causal, normalize=self.normalize,
                               projection=projection, block_size=self.block_size, impl=self.impl)
        return self.proj(merge_heads(out))

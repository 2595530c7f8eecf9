"""RGT's transformer block with the hybrid adaptive integration, HAI (arXiv 2303.06373, Sec. 3.3): the official
``Block`` of zhengchen1999/RGT ``basicsr/archs/rgt_arch.py`` around any ``(B, H, W, C)`` mixer, with its gated
MLP (``MLP`` + ``Gate``)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.validation import check_int, check_real


class GatedMLP(nn.Module):
    """RGT's ``MLP``: ``fc2(gate(GELU(fc1(x))))`` on ``(B, H, W, C)``, where the gate splits the hidden channels
    in halves ``x₁, x₂`` and returns ``x₁ · DWConv3x3(LayerNorm(x₂))`` (the official ``Gate``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        if hidden < 2 or hidden % 2:
            raise ValueError(f"hidden={hidden}: the gate splits the hidden channels in two halves; expected an "
                             "even int >= 2 (int(dim * mlp_ratio))")
        half = hidden // 2
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(half)
        self.conv = nn.Conv2d(half, half, kernel_size=3, stride=1, padding=1, groups=half)
        self.fc2 = nn.Linear(half, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.act(self.fc1(x)).chunk(2, dim=-1)
        gate = self.conv(self.norm(x2).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(x1 * gate)


class RGTBlock(ShowsOptions, nn.Module):
    """RGT's block on ``(B, H, W, C)``: pre-norm ``mixer`` and gated-MLP residuals, then HAI::

        y = x + mixer(LN₁(x)),   y = y + mlp(LN₂(y)),   out = y + γ ⊙ x

    ``γ ∈ R^C`` learnable, initialised to ``layerscale_value`` (official ``1e-4``): the block input re-enters
    the output with its own per-channel weight, "hybrid adaptive integration" of the features the block was
    given (the official code's ``# HAI`` lines). ``γ = 0`` is a plain pre-norm block. The official blocks
    alternate L-SA (rectangle-window attention) and RG-SA (:class:`attnzoo.layers.RecursiveGeneralizationAttention`)
    as ``mixer``; ``mlp_ratio`` (official 2 in the x2 configs, 4 by default) sets the MLP width
    ``int(dim · mlp_ratio)``, which must be even.
    """

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float = 2.0, layerscale_value: float = 1e-4) -> None:
        super().__init__()
        check_int("dim", dim)
        check_real("mlp_ratio", mlp_ratio)
        check_real("layerscale_value", layerscale_value, minimum=float("-inf"))
        if not isinstance(mixer, nn.Module):
            raise TypeError(f"mixer={mixer!r}: expected an nn.Module taking and returning (B, H, W, C={dim})")
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GatedMLP(dim, int(dim * mlp_ratio))
        self.gamma = nn.Parameter(layerscale_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        y = x + self.attn(self.norm1(x))
        y = y + self.mlp(self.norm2(y))
        return y + x * self.gamma

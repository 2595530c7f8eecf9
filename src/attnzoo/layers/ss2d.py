"""SS2D, the 2-D selective-scan token mixer of VMamba (Liu et al. 2024, arXiv 2401.10166), Mamba YOLO (Wang et al.
2024, arXiv 2406.05835) and LaMamba-Diff (arXiv 2408.02615), on ``(B, H, W, C)`` grids."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.ss2d.cross import DIRECTIONS
from attnzoo.ops.ss2d.functional import selective_scan_2d
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real

ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu}
"""Mamba YOLO's ``SS2D`` applies GELU to both branches; VMamba's and LaMamba's use SiLU (``act_layer``)."""


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """``x`` with ``softplus(x) = y`` (``y > 0``), as the official ``dt_init``: ``y + log(-expm1(-y))``."""
    return y + torch.log(-torch.expm1(-y))


class SS2D(ShowsOptions, nn.Module):
    """SS2D mixer: ``(B, H, W, C)`` -> ``(B, H, W, C)``, ``E = ssm_ratio · C`` inner channels::

        x, z = split(in_proj(u))                          # Linear C -> 2E (the official 1x1 conv)
        x = act(DWConv_{d_conv}(x))                       # depthwise, 'same' padding (none when d_conv = 1)
        Δ_k, B_k, C_k = split(x_proj_k(x)); Δ_k = dt_proj_k(Δ_k)     # per direction k, ranks R, N, N
        y = selective_scan_2d(x, Δ, -exp(A_log), B, C, D, dt_bias)   # 4 directions, cross-merged
        out = out_proj(LayerNorm(y) ⊙ act(z))             # Linear E -> C

    ``d_state`` is ``N`` (Mamba YOLO and VMamba v0: 16; VMamba v2 and LaMamba: 1), ``dt_rank`` ``R`` (default
    ``ceil(C / 16)``), ``act`` ``"gelu"`` (Mamba YOLO) or ``"silu"`` (VMamba, LaMamba). Initialisation as VMamba's
    ``SS2D`` ``"v0"`` (``dt_init``, ``A_log_init``, ``D_init``): ``A_log = log(1..N)`` (S4D-real), ``D = 1``,
    ``dt_proj`` weights uniform in ``±R^-1/2`` and biases the inverse softplus of ``Δ`` drawn log-uniformly in
    ``[1e-3, 0.1]``; the ``x_proj`` weights as ``nn.Linear``'s. Verified: the forward equals a transcription of Mamba
    YOLO's ``SS2D.forward`` and ``cross_selective_scan`` (``tests/test_ss2d.py``; HZAI-ZJNU/Mamba-YOLO
    ``ultralytics/nn/modules/mamba_yolo.py`` at 556e99e). Not ported: the official low-rank option
    (``ssm_rank_ratio < ssm_ratio``) and dropout. Time ``O(H W (C E + E N) · 4)``, linear in the pixels.
    """

    def __init__(self, dim: int, d_state: int = 16, ssm_ratio: float = 2.0, dt_rank: int | None = None,
                 d_conv: int = 3, conv_bias: bool = True, act: str = "gelu", bias: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("d_state", d_state)
        check_real("ssm_ratio", ssm_ratio)
        rank = check_optional_int("dt_rank", dt_rank)
        check_int("d_conv", d_conv)
        if d_conv % 2 == 0:
            raise ValueError(f"d_conv={d_conv!r}: expected an odd kernel size (1 = no convolution), so that the "
                             "depthwise convolution keeps the grid")
        check_flag("conv_bias", conv_bias)
        check_flag("bias", bias)
        if act not in ACTIVATIONS:
            raise ValueError(f"act={act!r}: expected one of {list(ACTIVATIONS)}")
        inner = int(ssm_ratio * dim)
        if inner < 1:
            raise ValueError(f"ssm_ratio={ssm_ratio!r}: expected int(ssm_ratio · dim) >= 1 inner channels "
                             f"(dim={dim})")
        self.dim, self.inner, self.d_state, self.act, self.impl = dim, inner, d_state, act, impl
        self.dt_rank = math.ceil(dim / 16) if rank is None else rank
        self.in_proj = nn.Linear(dim, 2 * inner, bias=bias)
        self.conv2d = nn.Conv2d(inner, inner, d_conv, padding=(d_conv - 1) // 2, groups=inner,
                                bias=conv_bias) if d_conv > 1 else None
        bound = inner ** -0.5
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, self.dt_rank + 2 * d_state, inner).uniform_(
            -bound, bound))
        dt_bound = self.dt_rank ** -0.5
        self.dt_projs_weight = nn.Parameter(torch.empty(DIRECTIONS, inner, self.dt_rank).uniform_(-dt_bound, dt_bound))
        dt = torch.exp(torch.rand(DIRECTIONS, inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_projs_bias = nn.Parameter(inverse_softplus(dt.clamp(min=1e-4)))
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(
            DIRECTIONS, inner, 1))
        self.Ds = nn.Parameter(torch.ones(DIRECTIONS, inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, H, W, C)`` -> ``(B, H, W, C)``."""
        check_layer_input(self, x, rank=4, dim=self.dim, layout=f"(B, H, W, C={self.dim})")
        act = ACTIVATIONS[self.act]
        xs, z = self.in_proj(x).chunk(2, dim=-1)
        if self.conv2d is not None:
            xs = self.conv2d(xs.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        xs = act(xs)
        projected = torch.einsum("bhwe,kce->bkhwc", xs, autocast_like(self.x_proj_weight, xs))
        dts, bs, cs = projected.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        # contiguous: einsum returns a (k, b)-major permutation, on which torch 2.13's traced softplus backward
        # (AOT autograd) predicts other strides than the eager kernel returns, and the compiled backward fails
        dts = torch.einsum("bkhwr,ker->bkhwe", dts, autocast_like(self.dt_projs_weight, dts)).contiguous()
        params = [autocast_like(t, xs) for t in (-torch.exp(self.A_logs), self.Ds, self.dt_projs_bias)]
        y = selective_scan_2d(xs, dts, params[0], bs, cs, params[1], params[2], delta_softplus=True, impl=self.impl)
        return self.out_proj(self.out_norm(y) * act(z))

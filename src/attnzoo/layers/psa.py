"""Polarized self-attention (arXiv 2107.00782): the ``(B, C, H, W)`` module, as the paper writes it or as the
official code runs it."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import check_choice
from attnzoo.ops.psa.common import LAYOUTS
from attnzoo.ops.psa.functional import polarized_self_attention
from attnzoo.validation import check_int, check_real

FORMS = ("paper", "official")
SPATIAL_SOFTMAX = {("paper", "parallel"): "channels", ("paper", "sequential"): "channels",
                   ("official", "parallel"): "context", ("official", "sequential"): "value"}
"""The spatial branch's softmax of each form and layout (:func:`~attnzoo.ops.polarized_self_attention`)."""


class PolarizedSelfAttention(ShowsOptions, nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: polarized self-attention (:func:`~attnzoo.ops.polarized_self_attention`).

    ``layout``: ``"parallel"`` (PSA_p, ``A_ch ⊙ x + A_sp ⊙ x``) or ``"sequential"`` (PSA_s). ``form``:
    ``"paper"`` (a LayerNorm over C after ``W_z``, the spatial softmax over the C/2 channels of the pooled query) or
    ``"official"`` (``DeLightCMU/PSA`` ``PSA_p`` / ``PSA_s``: no LayerNorm and the softmax over the positions of the
    product for parallel; for sequential the ``C/2 -> C/8 -> LayerNorm -> ReLU -> C`` bottleneck with biases as
    ``conv_up`` and the softmax over the positions of ``W_v'(x)``). Submodules are named as the official code's
    (``conv_q_right``, ``conv_v_right``, ``conv_up``: the channel branch; ``conv_q_left``, ``conv_v_left``: the
    spatial branch), so its state dicts load as they are; its init (Kaiming normal, fan-in, on the four query /
    value convolutions; PyTorch's default elsewhere). ``dim`` must be even (8 or more for the official
    sequential bottleneck).

    >>> import torch
    >>> layer = PolarizedSelfAttention(32, layout="sequential")
    >>> layer(torch.randn(2, 32, 9, 7)).shape
    torch.Size([2, 32, 9, 7])
    """

    def __init__(self, dim: int, layout: str = "parallel", form: str = "paper", eps: float = 1e-5,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        if dim % 2:
            raise ValueError(f"dim={dim}: expected an even number of channels (the branches keep dim / 2)")
        self.layout, self.form = check_choice("layout", layout, LAYOUTS), check_choice("form", form, FORMS)
        self.eps = check_real("eps", eps)
        half = dim // 2
        bottleneck = form == "official" and layout == "sequential"
        if bottleneck and half // 4 == 0:
            raise ValueError(f"dim={dim}: form='official' with layout='sequential' needs dim >= 8 (its bottleneck "
                             "has dim / 2 // 4 channels)")
        self.conv_q_right = nn.Conv2d(dim, 1, 1, bias=False)
        self.conv_v_right = nn.Conv2d(dim, half, 1, bias=False)
        if bottleneck:
            self.conv_up = nn.Sequential(nn.Conv2d(half, half // 4, 1), nn.LayerNorm([half // 4, 1, 1], eps=eps),
                                         nn.ReLU(inplace=True), nn.Conv2d(half // 4, dim, 1))
        else:
            self.conv_up = nn.Conv2d(half, dim, 1, bias=False)
        self.channel_norm = nn.LayerNorm(dim, eps=eps) if form == "paper" else None
        self.conv_q_left = nn.Conv2d(dim, half, 1, bias=False)
        self.conv_v_left = nn.Conv2d(dim, half, 1, bias=False)
        for conv in (self.conv_q_right, self.conv_v_right, self.conv_q_left, self.conv_v_left):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        self.spatial_softmax = SPATIAL_SOFTMAX[form, layout]
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, C, H, W)", channels_first=True)
        weights: dict[str, torch.Tensor | None] = {}
        if isinstance(self.conv_up, nn.Sequential):
            hidden, norm, _, up = self.conv_up
            weights.update(channel_hidden=hidden.weight, channel_hidden_bias=hidden.bias,
                           hidden_norm_weight=norm.weight.view(-1), hidden_norm_bias=norm.bias.view(-1),
                           channel_up=up.weight, channel_up_bias=up.bias)
        else:
            weights["channel_up"] = self.conv_up.weight
        if self.channel_norm is not None:
            weights.update(channel_norm_weight=self.channel_norm.weight, channel_norm_bias=self.channel_norm.bias)
        weights.update(channel_query=self.conv_q_right.weight, channel_value=self.conv_v_right.weight,
                       spatial_query=self.conv_q_left.weight, spatial_value=self.conv_v_left.weight)
        return polarized_self_attention(x, **{k: autocast_like(t, x) for k, t in weights.items()},
                                        layout=self.layout, spatial_softmax=self.spatial_softmax, eps=self.eps,
                                        impl=self.impl)

"""Polarized self-attention's oracle: both branches in the paper's order of operations, every 1x1 convolution
applied to the whole map as a channel sum, softmax and LayerNorm by their formulas."""

from __future__ import annotations

import torch

from attnzoo.ops.psa.common import ChannelGate, SpatialGate, combine


def pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_c weight[o, c] · x[b, c, i, j]``: a bias-free 1x1 convolution, ``weight`` ``(O, C, 1, 1)``."""
    return torch.einsum("bchw,oc->bohw", x, weight[:, :, 0, 0])


def softmax(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``exp(t) / sum exp(t)`` along ``dim`` (shifted by the maximum)."""
    e = (t - t.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def layer_norm(t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``(t - mean) / sqrt(var + eps) · weight + bias`` over the last dim (biased variance)."""
    mean = t.mean(dim=-1, keepdim=True)
    var = (t - mean).square().mean(dim=-1, keepdim=True)
    return (t - mean) / (var + eps).sqrt() * weight + bias


def channel_gate_reference(x: torch.Tensor, gate: ChannelGate, eps: float) -> torch.Tensor:
    """``σ([LN](W_z(hidden(W_v(x) · softmax_HW(W_q(x)))))) ``: ``(B, C, 1, 1)``."""
    q = softmax(pointwise(x, gate.query).flatten(2), -1)  # (B, 1, HW)
    context = (pointwise(x, gate.value).flatten(2) * q).sum(dim=-1)  # (B, C/2)
    if gate.hidden is not None:  # the official PSA_s bottleneck: 1x1 conv, LayerNorm, ReLU
        context = context @ gate.hidden[:, :, 0, 0].transpose(0, 1) + gate.hidden_bias
        context = torch.relu(layer_norm(context, gate.hidden_norm_weight, gate.hidden_norm_bias, eps))
    z = context @ gate.up[:, :, 0, 0].transpose(0, 1)
    if gate.up_bias is not None:
        z = z + gate.up_bias
    if gate.norm_weight is not None:  # the paper's LayerNorm over the C channels
        z = layer_norm(z, gate.norm_weight, gate.norm_bias, eps)
    return torch.sigmoid(z)[:, :, None, None]


def spatial_gate_reference(x: torch.Tensor, gate: SpatialGate, spatial_softmax: str) -> torch.Tensor:
    """``σ(q^T · W_v(x))`` with ``q = GAP(W_q(x))``, the softmax over the channels of ``q`` (``"channels"``, the
    paper), over the positions of the product (``"context"``, official PSA_p) or over the positions of each
    channel of ``W_v(x)`` (``"value"``, official PSA_s): ``(B, 1, H, W)``."""
    b, _, h, w = x.shape
    q = pointwise(x, gate.query).mean(dim=(2, 3))  # (B, C/2)
    v = pointwise(x, gate.value).flatten(2)  # (B, C/2, HW)
    if spatial_softmax == "channels":
        q = softmax(q, -1)
    elif spatial_softmax == "value":
        v = softmax(v, -1)
    context = torch.einsum("bi,bin->bn", q, v)
    if spatial_softmax == "context":
        context = softmax(context, -1)
    return torch.sigmoid(context).view(b, 1, h, w)


def psa_reference(x: torch.Tensor, channel: ChannelGate, spatial: SpatialGate, layout: str, spatial_softmax: str,
                  eps: float) -> torch.Tensor:
    return combine(x, layout, lambda t: channel_gate_reference(t, channel, eps),
                   lambda t: spatial_gate_reference(t, spatial, spatial_softmax))

"""Polarized self-attention with its linear maps reassociated, so that no 1x1 convolution to C/2 channels runs on
the whole map where the result is pooled anyway: ``W_v(x) · p = W_v (x · p)`` (channel branch: pool the map with
the softmax first, O(CHW), then ``W_v`` on one vector, O(C²)) and ``q^T W_v(x) = (W_v^T q)^T x`` with
``GAP(W_q(x)) = W_q GAP(x)`` (spatial branch, ``"channels"`` / ``"context"`` softmax: O(CHW + C²) instead of
O(C² HW)). The official PSA_s's ``"value"`` softmax is taken over each channel of ``W_v(x)``, which must then be
formed: O(C² HW) there, as the official code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.psa.common import ChannelGate, SpatialGate, combine


def channel_gate_reassociated(x: torch.Tensor, gate: ChannelGate, eps: float) -> torch.Tensor:
    q = F.conv2d(x, gate.query).flatten(2).softmax(dim=-1)  # (B, 1, HW)
    pooled = torch.bmm(x.flatten(2), q.transpose(1, 2))[..., 0]  # (B, C): x · softmax, before W_v
    context = F.linear(pooled, gate.value[:, :, 0, 0])  # (B, C/2)
    if gate.hidden is not None:
        context = F.linear(context, gate.hidden[:, :, 0, 0], gate.hidden_bias)
        context = torch.relu(F.layer_norm(context, context.shape[-1:], gate.hidden_norm_weight,
                                          gate.hidden_norm_bias, eps))
    z = F.linear(context, gate.up[:, :, 0, 0], gate.up_bias)
    if gate.norm_weight is not None:
        z = F.layer_norm(z, z.shape[-1:], gate.norm_weight, gate.norm_bias, eps)
    return torch.sigmoid(z)[:, :, None, None]


def spatial_gate_reassociated(x: torch.Tensor, gate: SpatialGate, spatial_softmax: str) -> torch.Tensor:
    b, _, h, w = x.shape
    q = F.linear(x.mean(dim=(2, 3)), gate.query[:, :, 0, 0])  # (B, C/2) = GAP(W_q x)
    if spatial_softmax == "value":
        v = F.conv2d(x, gate.value).flatten(2).softmax(dim=-1)  # (B, C/2, HW)
        context = torch.bmm(q[:, None], v)[:, 0]
    else:
        if spatial_softmax == "channels":
            q = q.softmax(dim=-1)
        u = q @ gate.value[:, :, 0, 0]  # (B, C) = W_v^T q
        context = torch.bmm(u[:, None], x.flatten(2))[:, 0]  # (B, HW)
        if spatial_softmax == "context":
            context = context.softmax(dim=-1)
    return torch.sigmoid(context).view(b, 1, h, w)


def psa_reassociated(x: torch.Tensor, channel: ChannelGate, spatial: SpatialGate, layout: str,
                     spatial_softmax: str, eps: float) -> torch.Tensor:
    return combine(x, layout, lambda t: channel_gate_reassociated(t, channel, eps),
                   lambda t: spatial_gate_reassociated(t, spatial, spatial_softmax))

"""Polarized self-attention (Liu et al., arXiv 2107.00782, paper 38): a channel-only and a spatial-only branch,
each keeping a high internal resolution (C/2 channels, H·W positions) and ending in a sigmoid::

    A_ch(x) = σ(LN(W_z(W_v(x) · softmax_HW(W_q(x)))))                      ∈ R^{C×1×1}
    A_sp(x) = σ(softmax_{C/2}(GAP(W_q'(x)))^T · W_v'(x))                   ∈ R^{1×H×W}
    parallel:    out = A_ch(x) ⊙ x + A_sp(x) ⊙ x
    sequential:  y = A_ch(x) ⊙ x,  out = A_sp(y) ⊙ y

(``W_q`` 1x1 C -> 1, ``W_v``, ``W_q'``, ``W_v'`` 1x1 C -> C/2, ``W_z`` 1x1 C/2 -> C, all without bias). The
official code (``DeLightCMU/PSA`` ``semantic-segmentation/network/PSA.py``) differs, and each difference is an
option here: ``PSA_p`` has no LayerNorm after ``W_z`` (omit ``channel_norm_*``) and takes the spatial softmax over
the positions of the product instead of over the channels of the pooled query (``spatial_softmax="context"``);
``PSA_s`` replaces ``W_z`` by a bottleneck ``1x1 (C/2 -> C/8) -> LayerNorm -> ReLU -> 1x1 (C/8 -> C)`` with biases
(``channel_hidden*`` and ``channel_up_bias``) and takes the softmax over the positions of each channel of
``W_v'(x)`` before the product (``spatial_softmax="value"``). Layout ``(B, C, H, W)`` in and out (the ``cnn``
family's convention, :mod:`attnzoo.ops.feature_maps`). Time O(CHW + C²) with the reassociated path (O(C² HW) for
``"value"``), O(C² HW) for the reference.

Implementations: ``reassociated`` (the linear maps applied to pooled vectors, see
:mod:`attnzoo.ops.psa.reassociated`) and ``reference`` (the paper's order of operations). Verified: the two agree
forward and backward (the registry contract); the official ``PSA_p`` and ``PSA_s`` (commit 588b370d, transcribed)
with copied weights; the catalog's limits (zero queries: uniform softmax, channel context = spatial mean of
``W_v x``; ``A_sp = σ(mean_c W_v x)``), gates in (0, 1), the sequential composition (``tests/test_psa.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_choice, check_feature_map, check_optional_weight, check_weight
from attnzoo.ops.psa.common import LAYOUTS, SPATIAL_SOFTMAX, ChannelGate, SpatialGate
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_real

VARIANT_NAME = "polarized_self_attention"


def _check_pair(prefix: str, weight: torch.Tensor | None, bias: torch.Tensor | None, width: int,
                x: torch.Tensor) -> None:
    if (weight is None) != (bias is None):
        raise ValueError(f"{prefix}_weight and {prefix}_bias: give both (a LayerNorm's affine) or neither")
    check_optional_weight(f"{prefix}_weight", weight, (width,), x)
    check_optional_weight(f"{prefix}_bias", bias, (width,), x)


def polarized_self_attention(x: torch.Tensor, channel_query: torch.Tensor, channel_value: torch.Tensor,
                             channel_up: torch.Tensor, spatial_query: torch.Tensor, spatial_value: torch.Tensor,
                             channel_up_bias: torch.Tensor | None = None,
                             channel_norm_weight: torch.Tensor | None = None,
                             channel_norm_bias: torch.Tensor | None = None,
                             channel_hidden: torch.Tensor | None = None,
                             channel_hidden_bias: torch.Tensor | None = None,
                             hidden_norm_weight: torch.Tensor | None = None,
                             hidden_norm_bias: torch.Tensor | None = None, layout: str = "parallel",
                             spatial_softmax: str = "channels", eps: float = 1e-5,
                             impl: str = "auto") -> torch.Tensor:
    """Polarized self-attention. ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``C`` even.

    Channel branch: ``channel_query`` ``(1, C, 1, 1)`` (``W_q``), ``channel_value`` ``(C/2, C, 1, 1)`` (``W_v``),
    ``channel_up`` ``(C, R, 1, 1)`` (``W_z``; ``R = C/2``, or the bottleneck's width) with ``channel_up_bias``
    ``(C,)`` or ``None``; ``channel_norm_weight`` / ``_bias`` ``(C,)``: the paper's LayerNorm after ``W_z``
    (``None``: none, official PSA_p); ``channel_hidden`` ``(R, C/2, 1, 1)`` with ``channel_hidden_bias`` and
    ``hidden_norm_weight`` / ``_bias`` ``(R,)``: official PSA_s's bottleneck (``None``: none). Spatial branch:
    ``spatial_query`` and ``spatial_value`` ``(C/2, C, 1, 1)``. ``layout``: ``"parallel"`` or ``"sequential"``;
    ``spatial_softmax``: ``"channels"`` (paper), ``"context"`` (official PSA_p) or ``"value"`` (official PSA_s);
    ``eps``: the LayerNorms'. ``impl``: ``"auto"`` (``"reassociated"``), ``"reassociated"`` or ``"reference"``.
    """
    _, c, _, _ = check_feature_map("x", x)
    if c % 2:
        raise ValueError(f"x has shape {tuple(x.shape)}, C={c} channels; expected an even C (the branches keep "
                         "C/2 channels)")
    half = c // 2
    check_weight("channel_query", channel_query, (1, c, 1, 1), x)
    for name, t in (("channel_value", channel_value), ("spatial_query", spatial_query),
                    ("spatial_value", spatial_value)):
        check_weight(name, t, (half, c, 1, 1), x)
    width = half
    if channel_hidden is not None:
        if not isinstance(channel_hidden, torch.Tensor) or channel_hidden.dim() != 4 or channel_hidden.shape[0] == 0:
            raise ValueError(f"channel_hidden has shape {tuple(getattr(channel_hidden, 'shape', ()))}; expected "
                             f"(R, C/2, 1, 1) = (R, {half}, 1, 1) with R >= 1")
        width = channel_hidden.shape[0]
        check_weight("channel_hidden", channel_hidden, (width, half, 1, 1), x)
        check_weight("channel_hidden_bias", channel_hidden_bias, (width,), x)
        if hidden_norm_weight is None:
            raise ValueError("channel_hidden needs hidden_norm_weight and hidden_norm_bias (the bottleneck's "
                             "LayerNorm)")
        _check_pair("hidden_norm", hidden_norm_weight, hidden_norm_bias, width, x)
    elif any(t is not None for t in (channel_hidden_bias, hidden_norm_weight, hidden_norm_bias)):
        raise ValueError("channel_hidden_bias / hidden_norm_weight / hidden_norm_bias given without channel_hidden")
    check_weight("channel_up", channel_up, (c, width, 1, 1), x)
    check_optional_weight("channel_up_bias", channel_up_bias, (c,), x)
    _check_pair("channel_norm", channel_norm_weight, channel_norm_bias, c, x)
    check_choice("layout", layout, LAYOUTS)
    check_choice("spatial_softmax", spatial_softmax, SPATIAL_SOFTMAX)
    eps = check_real("eps", eps)
    channel = ChannelGate(channel_query, channel_value, channel_up, channel_up_bias, channel_norm_weight,
                          channel_norm_bias, channel_hidden, channel_hidden_bias, hidden_norm_weight,
                          hidden_norm_bias)
    spatial = SpatialGate(spatial_query, spatial_value)
    tensors = [x, *(t for t in (*channel, *spatial) if t is not None)]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    return implementation.fn(x, channel, spatial, layout, spatial_softmax, eps)

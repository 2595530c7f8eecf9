"""The SSMA fusion block (Valada, Mohan, Burgard, "Self-Supervised Model Adaptation for Multimodal Semantic
Segmentation", IJCV 2020, arXiv 1808.03833, Section 3.2; official TF code ``DeepSceneSeg/SSMA``,
``models/SSMA.py`` ``_setup``, commit 7066905).

Two modality-specific feature maps ``x`` ``(B, Cx, H, W)`` and ``y`` ``(B, Cy, H, W)`` of one grid are
concatenated, ``X = cat(x, y)`` (``C = Cx + Cy`` channels), and recalibrated by a gate computed from both::

    g = σ(W_e ∗ ReLU(W_r ∗ X + b_r) + b_e)          (C -> C/η -> C, 3x3 convolutions, η = 16)
    out = BN(W_f ∗ (X ⊙ g) + b_f)                   (1x1, C -> C_out, then batch norm)

so that, per pixel and channel, the network weighs each modality's features by how informative they are in that
context (the "self-supervised" adaptation: the gate is learnt with no extra label). This op takes the two inputs
separately (``x``, ``y``), as a caller has them, the weights of the three convolutions (each with an odd square
kernel; official: 3, 3, 1) and the batch norm's affine parameters and running statistics with ``training``,
``momentum`` and ``eps`` (the family's convention, :mod:`attnzoo.ops.feature_maps`: ``training=False``
normalises with the running statistics, a pure function); it returns ``(B, C_out, H, W)``.
Implementations: ``conv`` (``F.conv2d``) and ``reference`` (explicit tap sums). Time O(H · W · (k_r² · C ·
C/η + k_e² · C/η · C + k_f² · C · C_out)).
Verified against the official TF code transcribed to PyTorch with copied weights (``tests/test_ssma.py``; the TF
code itself was not run: no TensorFlow here): the gate, the order concat -> gate -> 1x1 -> batch norm, the
bias initialisation 0.01, the He (truncated normal) weights and TF's batch norm (batch moments in training,
``variance_epsilon=1e-5``, decay 0.99: ``momentum=0.01``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import (
    check_feature_map,
    check_norm_options,
    check_norm_statistics,
    check_optional_weight,
    check_weight,
)
from attnzoo.registry import CallFacts, select_implementation

VARIANT_NAME = "ssma_fusion"


def _check_same_grid(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    """``t`` is a feature map ``(B, C', H, W)`` with ``x``'s batch, grid, dtype and device (any channels)."""
    check_feature_map(name, t)
    if t.shape[0] != x.shape[0] or t.shape[2:] != x.shape[2:]:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected x's batch and grid "
                         f"({x.shape[0]}, C, {x.shape[2]}, {x.shape[3]})")
    check_weight(name, t, tuple(t.shape), x)


def _check_conv_weight(name: str, weight: torch.Tensor, cin: int, x: torch.Tensor) -> int:
    """``weight`` ``(Cout, cin, k, k)`` with an odd ``k``; returns ``Cout``."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.shape[-1] != weight.shape[-2] \
            or weight.shape[0] == 0:
        raise ValueError(f"{name} has shape {tuple(getattr(weight, 'shape', ()))}; expected (Cout, {cin}, k, k) "
                         "with Cout >= 1 and a square kernel")
    k = weight.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"{name} has kernel size {k}; expected an odd kernel size ('same' padding is centred)")
    check_weight(name, weight, (weight.shape[0], cin, k, k), x)
    return weight.shape[0]


def ssma_fusion(x: torch.Tensor, y: torch.Tensor, reduce_weight: torch.Tensor, expand_weight: torch.Tensor,
                fuse_weight: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor,
                running_mean: torch.Tensor, running_var: torch.Tensor, reduce_bias: torch.Tensor | None = None,
                expand_bias: torch.Tensor | None = None, fuse_bias: torch.Tensor | None = None,
                training: bool = False, momentum: float = 0.01, eps: float = 1e-5,
                impl: str = "auto") -> torch.Tensor:
    """SSMA fusion of ``x`` ``(B, Cx, H, W)`` and ``y`` ``(B, Cy, H, W)`` -> ``(B, C_out, H, W)`` (see the module).

    ``reduce_weight`` ``(C/η, Cx + Cy, k, k)``, ``expand_weight`` ``(Cx + Cy, C/η, k, k)``, ``fuse_weight``
    ``(C_out, Cx + Cy, k, k)``, biases of their output channels or ``None``; ``norm_weight``, ``norm_bias``,
    ``running_mean``, ``running_var`` ``(C_out,)``, ``training``, ``momentum`` (PyTorch's convention; the official
    TF decay 0.99 is 0.01), ``eps``: the batch norm; ``impl``: ``"auto"`` (``"conv"``), ``"conv"`` or
    ``"reference"``.

    >>> import torch
    >>> x, y = torch.randn(2, 8, 5, 7), torch.randn(2, 8, 5, 7)
    >>> w_r, w_e, w_f = torch.randn(1, 16, 3, 3), torch.randn(16, 1, 3, 3), torch.randn(8, 16, 1, 1)
    >>> ones, zeros = torch.ones(8), torch.zeros(8)
    >>> ssma_fusion(x, y, w_r, w_e, w_f, ones, zeros, zeros, ones).shape
    torch.Size([2, 8, 5, 7])
    """
    check_feature_map("x", x)
    _check_same_grid("y", y, x)
    channels = x.shape[1] + y.shape[1]
    hidden = _check_conv_weight("reduce_weight", reduce_weight, channels, x)
    expanded = _check_conv_weight("expand_weight", expand_weight, hidden, x)
    if expanded != channels:
        raise ValueError(f"expand_weight has shape {tuple(expand_weight.shape)}; expected ({channels}, {hidden}, k, "
                         "k): the gate has one value per channel of cat(x, y)")
    out = _check_conv_weight("fuse_weight", fuse_weight, channels, x)
    check_optional_weight("reduce_bias", reduce_bias, (hidden,), x)
    check_optional_weight("expand_bias", expand_bias, (channels,), x)
    check_optional_weight("fuse_bias", fuse_bias, (out,), x)
    statistics = {"norm_weight": norm_weight, "norm_bias": norm_bias, "running_mean": running_mean,
                  "running_var": running_var}
    check_norm_statistics(statistics, out, x)
    check_norm_options(training, momentum, eps)
    tensors = [t for t in (x, y, reduce_weight, expand_weight, fuse_weight, *statistics.values(), reduce_bias,
                           expand_bias, fuse_bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    norm = (norm_weight, norm_bias, running_mean, running_var, training, momentum, eps)
    return implementation.fn(x, y, reduce_weight, reduce_bias, expand_weight, expand_bias, fuse_weight, fuse_bias,
                             norm)

"""ULSAM, the ultra-lightweight subspace attention module (Saini et al., WACV 2020, arXiv 2006.15102, paper 8).

The ``C`` channels split into ``g`` subspaces of ``G = C / g``; each subspace ``F_n`` gets one spatial attention
map from a depthwise 1x1 convolution, BatchNorm, ReLU, a 3x3 max pool (stride 1), a pointwise convolution to one
channel, BatchNorm, ReLU and a softmax over the ``H·W`` positions::

    A_n = softmax_HW(ReLU(BN(PW_n(maxpool3x3(ReLU(BN(DW_n(F_n))))))))  ∈ R^{1×H×W},  sum_HW A_n = 1
    out = concat_n (A_n ⊙ F_n + F_n)

Parameters: ``5C + 3g`` (depthwise weight and bias ``2C``, pointwise ``C + g``, the BatchNorms ``2C + 2g``). Layout
``(B, C, H, W)`` in and out (the ``cnn`` family's convention, :mod:`attnzoo.ops.feature_maps`: the two BatchNorms
enter as their affine and running statistics with ``training``, ``F.batch_norm``'s semantics). Time O(CHW).

Implementations: ``grouped`` (every subspace at once: one max pool, the ``g`` pointwise convolutions as one
batched product, eval-mode BatchNorms folded into the convolutions) and ``reference`` (the official per-subspace
loop, each step written out). Verified: the two agree forward and backward (the registry contract); the official
``ulsam.py`` (``Nandan91/ULSAM`` at 33308a90, transcribed without its ``set_default_tensor_type(cuda)`` line) with
copied weights in training and eval mode, running statistics included; the parameter count and the maps summing
to 1 (``tests/test_ulsam.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_norm_options, check_norm_statistics, check_weight
from attnzoo.registry import CallFacts, select_implementation

VARIANT_NAME = "subspace_attention"


def subspace_attention(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor,
                       dw_norm_weight: torch.Tensor, dw_norm_bias: torch.Tensor, dw_running_mean: torch.Tensor,
                       dw_running_var: torch.Tensor, pw_weight: torch.Tensor, pw_bias: torch.Tensor,
                       pw_norm_weight: torch.Tensor, pw_norm_bias: torch.Tensor, pw_running_mean: torch.Tensor,
                       pw_running_var: torch.Tensor, training: bool = False, momentum: float = 0.9,
                       eps: float = 1e-5, impl: str = "auto") -> torch.Tensor:
    """ULSAM: ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``g = pw_weight.shape[0]`` subspaces.

    ``dw_weight``, ``dw_bias``: the depthwise 1x1 convolution, ``(C,)`` each (the ``g`` subspaces' ``(G, 1, 1, 1)``
    weights concatenated and flattened); ``dw_norm_*`` / ``dw_running_*``: its BatchNorm, ``(C,)``;
    ``pw_weight`` ``(g, G)``, ``pw_bias`` ``(g,)``: the pointwise convolutions, one row per subspace;
    ``pw_norm_*`` / ``pw_running_*``: their BatchNorm, ``(g,)``. ``training``: normalise with the batch's
    statistics and update the running ones in place (``F.batch_norm``); ``momentum`` 0.9 as the official code (in
    PyTorch's convention: mostly the new batch), ``eps`` BatchNorm's. ``impl``: ``"auto"`` (``"grouped"``),
    ``"grouped"`` or ``"reference"``.
    """
    _, channels, _, _ = check_feature_map("x", x)
    if not isinstance(pw_weight, torch.Tensor) or pw_weight.dim() != 2 or pw_weight.shape[0] == 0 \
            or pw_weight.shape[0] * pw_weight.shape[1] != channels:
        shape = tuple(pw_weight.shape) if isinstance(pw_weight, torch.Tensor) else type(pw_weight).__name__
        raise ValueError(f"pw_weight has shape {shape}; expected (g, C / g): one pointwise row of C / g weights per "
                         f"subspace, g dividing C={channels}")
    groups = pw_weight.shape[0]
    check_weight("pw_weight", pw_weight, tuple(pw_weight.shape), x)
    check_weight("dw_weight", dw_weight, (channels,), x)
    check_weight("dw_bias", dw_bias, (channels,), x)
    check_weight("pw_bias", pw_bias, (groups,), x)
    check_norm_statistics({"dw_norm_weight": dw_norm_weight, "dw_norm_bias": dw_norm_bias,
                                 "dw_running_mean": dw_running_mean, "dw_running_var": dw_running_var}, channels, x)
    check_norm_statistics({"pw_norm_weight": pw_norm_weight, "pw_norm_bias": pw_norm_bias,
                                 "pw_running_mean": pw_running_mean, "pw_running_var": pw_running_var}, groups, x)
    check_norm_options(training, momentum, eps)
    tensors = [x, dw_weight, dw_bias, dw_norm_weight, dw_norm_bias, dw_running_mean, dw_running_var, pw_weight,
               pw_bias, pw_norm_weight, pw_norm_bias, pw_running_mean, pw_running_var]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    return implementation.fn(*tensors, training, float(momentum), float(eps))

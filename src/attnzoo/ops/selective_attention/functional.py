"""SDANet's selective dense attention (Wang, Zhang, Zhang, Jia, "Towards Real-World Prohibited Item Detection:
A Large-Scale X-ray Benchmark", ICCV 2021, arXiv 2108.07020: the selective dense attention network's
dense attention module in the FPN neck).

The repository ``bywang2018/security-dataset`` (commit 3ade35c) releases this neck only as compiled bytecode
(``mmdet/models/necks/__pycache__/attfpn.cpython-37.pyc`` and ``attfpn2``); the computation here follows those
files as decompiled with ``uncompyle6`` 3.9.3 (the classes ``channel_attention``, ``spatial_attention``,
``selective_attention``), not a released source file, and matches the paper's description (channel-wise and
spatial-wise attention selecting among the gathered pyramid levels, then a dependency refinement).

``x`` ``(B, M·C, H, W)`` holds ``M`` pyramid levels ``F_i`` of ``C`` channels gathered to one grid and
concatenated along the channels (the official ``torch.cat(feats, dim=1)``; the layer gathers them). Channel
attention (SKNet-style): the squeezed descriptor ``z = ReLU(BN(W_s · GAP(Σ_i F_i)))`` ``(B, d)`` (``W_s`` a 1x1
convolution without bias, its batch norm by the family's convention, :mod:`attnzoo.ops.feature_maps`), then
``a_i = softmax_i(W_i z + b_i)`` ``(C,)``. Spatial attention:
``U = Σ_i F_i``, ``w_i = softmax_i(K_i ∗ cat(mean_c U, max_c U))`` ``(H, W)`` (``K_i`` ``(2, k, k)``, no bias).
Output ``Σ_i a_i ⊙ F_i + Σ_i w_i ⊙ F_i`` ``(B, C, H, W)``; the layer then applies the GCNet context block
(the "dependency refinement"). Implementations: ``batched`` (every level in one call) and ``reference`` (level by
level, explicit tap sums). Time O(M · C · H · W + M · k² · H · W + B · M · C · d).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import (
    check_choice,
    check_feature_map,
    check_norm_options,
    check_norm_statistics,
    check_optional_weight,
    check_weight,
)
from attnzoo.registry import CallFacts, select_implementation

VARIANT_NAME = "selective_dense_attention"
BRANCHES = ("both", "channel", "spatial")


def selective_dense_attention(x: torch.Tensor, squeeze_weight: torch.Tensor, norm_weight: torch.Tensor,
                              norm_bias: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                              excite_weight: torch.Tensor, spatial_weight: torch.Tensor,
                              excite_bias: torch.Tensor | None = None, training: bool = False, momentum: float = 0.1,
                              eps: float = 1e-5, branches: str = "both", impl: str = "auto") -> torch.Tensor:
    """Selective attention over the ``M`` gathered levels of ``x`` ``(B, M·C, H, W)`` -> ``(B, C, H, W)`` (see
    the module); ``M`` and ``C`` are those of ``excite_weight``.

    ``squeeze_weight`` ``(d, C)`` (official ``fc``'s 1x1 convolution, ``d = C / 2``), its batch norm's
    ``norm_weight``, ``norm_bias``, ``running_mean``, ``running_var`` ``(d,)`` with ``training``, ``momentum``,
    ``eps``; ``excite_weight`` ``(M, C, d)`` and ``excite_bias`` ``(M, C)`` (the per-level 1x1 convolutions
    ``fcs``), ``spatial_weight`` ``(M, 2, k, k)`` with an odd ``k`` (official 7); ``branches``:
    ``"both"`` (the sum of the channel and spatial terms), ``"channel"`` or ``"spatial"`` (one term: the official
    module without refinement returns the spatial term alone); ``impl``:
    ``"auto"`` (``"batched"``), ``"batched"`` or ``"reference"``.

    >>> import torch
    >>> level = torch.randn(2, 8, 5, 5)
    >>> x = torch.cat([level] * 3, dim=1)          # three identical levels
    >>> ones, zeros = torch.ones(4), torch.zeros(4)                     # the squeeze's batch norm statistics
    >>> out = selective_dense_attention(x, torch.randn(4, 8), ones, zeros, zeros, ones, torch.randn(3, 8, 4),
    ...                                 torch.randn(3, 2, 7, 7))
    >>> torch.allclose(out, 2 * level)             # each softmax sums to 1 across levels
    True
    """
    b, channels, h, w = check_feature_map("x", x)
    if not isinstance(excite_weight, torch.Tensor) or excite_weight.dim() != 3 or 0 in excite_weight.shape:
        raise ValueError(f"excite_weight has shape {tuple(getattr(excite_weight, 'shape', ()))}; expected (M, C, d) "
                         "with M, C, d >= 1")
    m, c, d = excite_weight.shape
    if channels != m * c:
        raise ValueError(f"x has shape {tuple(x.shape)}, {channels} channels; expected M·C = {m}·{c} = {m * c} (the "
                         f"M = {m} levels of C = {c} channels of excite_weight, concatenated along the channels)")
    check_weight("squeeze_weight", squeeze_weight, (d, c), x)
    statistics = {"norm_weight": norm_weight, "norm_bias": norm_bias, "running_mean": running_mean,
                  "running_var": running_var}
    check_norm_statistics(statistics, d, x)
    check_norm_options(training, momentum, eps)
    check_weight("excite_weight", excite_weight, (m, c, d), x)
    check_optional_weight("excite_bias", excite_bias, (m, c), x)
    if not isinstance(spatial_weight, torch.Tensor) or spatial_weight.dim() != 4 \
            or spatial_weight.shape[-1] != spatial_weight.shape[-2]:
        raise ValueError(f"spatial_weight has shape {tuple(getattr(spatial_weight, 'shape', ()))}; expected "
                         f"(M, 2, k, k) = ({m}, 2, k, k)")
    k = spatial_weight.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"spatial_weight has kernel size {k}; expected an odd kernel size (centred padding)")
    check_weight("spatial_weight", spatial_weight, (m, 2, k, k), x)
    check_choice("branches", branches, BRANCHES)
    tensors = [t for t in (x, squeeze_weight, *statistics.values(), excite_weight, spatial_weight, excite_bias)
               if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    norm = (norm_weight, norm_bias, running_mean, running_var, training, momentum, eps)
    return implementation.fn(x.unflatten(1, (m, c)), squeeze_weight, norm, excite_weight, excite_bias,
                             spatial_weight, branches)

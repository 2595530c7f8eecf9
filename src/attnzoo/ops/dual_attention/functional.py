"""Position and channel attention (Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019, the
PAM / CAM modules from SAGAN), as used twice per scale by the multi-scale self-guided attention of Sinha & Dolz,
"Multi-scale self-guided attention for medical image segmentation" (IEEE JBHI 2020, arXiv 1906.02849); the
guided network itself is :class:`attnzoo.layers.MultiScaleGuidedAttention`.

PAM (``position_self_attention``): for ``x`` ``(B, C, H, W)`` with ``N = H·W`` pixels, 1x1 projections
``Q = Wq x + bq``, ``K = Wk x + bk`` ``(C', N)`` (``C' = C // 8`` in the paper) and ``V = Wv x + bv`` ``(C, N)``,
``S = softmax_row(Qᵀ K)`` ``(N, N)`` (no 1/√d scaling), ``out = γ · V Sᵀ + x``.
CAM (``channel_self_attention``): ``X = x`` as ``(C, N)``, ``E = X Xᵀ``, ``A = softmax_row(max_row(E) − E)``
``(C, C)``, ``out = γ · A X + x``. ``γ`` is a learnt scalar initialised to 0 (each module starts as the
identity). Implementations: ``sdpa`` (``scaled_dot_product_attention``, the flash kernel on CPU: O(N · C)
memory for PAM) and ``reference`` (the explicit matrices of the official ``src/models/attention.py`` of
``sinAshish/Multi-Scale-Attention``). Time O(N² · C) (PAM), O(C² · N) (CAM).
Verified: both implementations against each other forward and backward in float64; PAM against dense attention
with scale 1; the official ``PAM_Module`` / ``CAM_Module`` transcribed with copied weights
(``tests/test_dual_attention.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_optional_weight, check_weight
from attnzoo.registry import CallFacts, select_implementation

POSITION_VARIANT = "position_self_attention"
CHANNEL_VARIANT = "channel_self_attention"


def _check_gamma(gamma: torch.Tensor, x: torch.Tensor) -> None:
    check_weight("gamma", gamma, (1,), x)


def position_self_attention(x: torch.Tensor, query_weight: torch.Tensor, key_weight: torch.Tensor,
                            value_weight: torch.Tensor, gamma: torch.Tensor, query_bias: torch.Tensor | None = None,
                            key_bias: torch.Tensor | None = None, value_bias: torch.Tensor | None = None,
                            impl: str = "auto") -> torch.Tensor:
    """PAM: ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``γ · V softmax_row(Qᵀ K)ᵀ + x``.

    ``query_weight`` / ``key_weight`` ``(C', C)`` (the 1x1 convolutions' weights, any ``C' >= 1``),
    ``value_weight`` ``(C, C)``, biases ``(C',)``, ``(C',)``, ``(C,)`` or ``None``, ``gamma`` ``(1,)``;
    ``impl``: ``"auto"`` (``"sdpa"``), ``"sdpa"`` or ``"reference"``.

    >>> import torch
    >>> x = torch.randn(2, 16, 5, 7)
    >>> wq, wk, wv = torch.randn(2, 16), torch.randn(2, 16), torch.randn(16, 16)
    >>> out = position_self_attention(x, wq, wk, wv, gamma=torch.zeros(1))
    >>> bool(torch.equal(out, x))   # gamma = 0: the identity
    True
    """
    _, c, _, _ = check_feature_map("x", x)
    if not isinstance(query_weight, torch.Tensor) or query_weight.dim() != 2 or query_weight.shape[0] == 0:
        raise ValueError(f"query_weight has shape {tuple(getattr(query_weight, 'shape', ()))}; expected (C', C) "
                         f"= (C', {c}) with C' >= 1")
    inner = query_weight.shape[0]
    check_weight("query_weight", query_weight, (inner, c), x)
    check_weight("key_weight", key_weight, (inner, c), x)
    check_weight("value_weight", value_weight, (c, c), x)
    check_optional_weight("query_bias", query_bias, (inner,), x)
    check_optional_weight("key_bias", key_bias, (inner,), x)
    check_optional_weight("value_bias", value_bias, (c,), x)
    _check_gamma(gamma, x)
    tensors = [t for t in (x, query_weight, key_weight, value_weight, gamma, query_bias, key_bias, value_bias)
               if t is not None]
    implementation = select_implementation(POSITION_VARIANT, impl, CallFacts.of(tensors))
    return implementation.fn(x, query_weight, query_bias, key_weight, key_bias, value_weight, value_bias, gamma)


def channel_self_attention(x: torch.Tensor, gamma: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """CAM: ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``γ · softmax_row(max_row(E) − E) X + x`` with
    ``E = X Xᵀ`` over the channels; ``gamma`` ``(1,)``; ``impl``: ``"auto"`` (``"sdpa"``), ``"sdpa"`` or
    ``"reference"``.

    >>> import torch
    >>> x = torch.randn(2, 6, 4, 4)
    >>> out = channel_self_attention(x, torch.ones(1))
    >>> out.shape
    torch.Size([2, 6, 4, 4])
    """
    check_feature_map("x", x)
    _check_gamma(gamma, x)
    implementation = select_implementation(CHANNEL_VARIANT, impl, CallFacts.of([x, gamma]))
    return implementation.fn(x, gamma)

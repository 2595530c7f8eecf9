"""LKA, the large kernel attention of the Visual Attention Network (Guo et al., arXiv 2202.09741, paper 16)::

    attn = Conv_1x1(DW-D-Conv_{7x7, dilation 3}(DW-Conv_{5x5}(x))),        out = attn ⊙ x

a depthwise 5x5 convolution, a depthwise 7x7 convolution with dilation 3 and a pointwise convolution, whose
result multiplies the input element by element (no softmax, no sigmoid). It decomposes a K x K = 21 x 21
convolution (``(2d - 1)²`` depthwise, ``⌈K/d⌉²`` dilated depthwise, 1x1 for the channels): the receptive field is
``5 + 6 · 3 = 23`` pixels per side, every offset of it reached. Kernel sizes (odd, possibly rectangular) come
from the weights, ``dilation`` is an option. Layout ``(B, C, H, W)`` in and out (the ``cnn`` family's
convention, :mod:`attnzoo.ops.feature_maps`). Time O(CHW (k1² + k2² + C)).

Implementations: ``conv2d`` (``F.conv2d``, as the official ``AttentionModule``) and ``reference`` (each depthwise
convolution as its sum over taps of shifted maps). Verified: the two agree forward and backward (the registry
contract); the official ``AttentionModule`` and ``SpatialAttention`` of ``Visual-Attention-Network/VAN-Classification``
``models/van.py`` (commit 72e17fdb, transcribed; timm 1.0.31 has no VAN) with copied weights; the exact 23 x 23
receptive field, and the interior equality with one depthwise 23 x 23 convolution of the composed kernel
(``tests/test_lka.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_optional_weight, check_weight
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_int

VARIANT_NAME = "large_kernel_attention"


def _check_depthwise(name: str, weight: torch.Tensor, channels: int) -> None:
    shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or tuple(weight.shape[:2]) != (channels, 1) \
            or weight.shape[2] % 2 == 0 or weight.shape[3] % 2 == 0:
        raise ValueError(f"{name} has shape {shape}; expected (C, 1, kh, kw) = ({channels}, 1, kh, kw) with kh, kw "
                         "odd (a depthwise kernel with a centre tap)")


def large_kernel_attention(x: torch.Tensor, dw_weight: torch.Tensor, dilated_weight: torch.Tensor,
                           pw_weight: torch.Tensor, dw_bias: torch.Tensor | None = None,
                           dilated_bias: torch.Tensor | None = None, pw_bias: torch.Tensor | None = None,
                           dilation: int = 3, impl: str = "auto") -> torch.Tensor:
    """LKA: ``x ⊙ PW(DW_dilated(DW(x)))``. ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    ``dw_weight`` ``(C, 1, k1, k1')`` and ``dilated_weight`` ``(C, 1, k2, k2')`` (odd sizes; VAN: 5 and 7): the
    depthwise convolutions, zero-padded to keep the size, the second with ``dilation`` (VAN: 3); ``pw_weight``
    ``(C, C, 1, 1)``: the pointwise convolution; biases ``(C,)`` or ``None``. ``impl``: ``"auto"``
    (``"conv2d"``), ``"conv2d"`` or ``"reference"``.

    >>> import torch
    >>> c = 8
    >>> out = large_kernel_attention(torch.randn(2, c, 9, 11), torch.randn(c, 1, 5, 5), torch.randn(c, 1, 7, 7),
    ...                              torch.randn(c, c, 1, 1))
    >>> out.shape
    torch.Size([2, 8, 9, 11])
    """
    _, channels, _, _ = check_feature_map("x", x)
    _check_depthwise("dw_weight", dw_weight, channels)
    _check_depthwise("dilated_weight", dilated_weight, channels)
    check_weight("dw_weight", dw_weight, tuple(dw_weight.shape), x)
    check_weight("dilated_weight", dilated_weight, tuple(dilated_weight.shape), x)
    check_weight("pw_weight", pw_weight, (channels, channels, 1, 1), x)
    for name, bias in (("dw_bias", dw_bias), ("dilated_bias", dilated_bias), ("pw_bias", pw_bias)):
        check_optional_weight(name, bias, (channels,), x)
    check_int("dilation", dilation)
    tensors = [t for t in (x, dw_weight, dw_bias, dilated_weight, dilated_bias, pw_weight, pw_bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, dilation=dilation > 1))
    return implementation.fn(x, dw_weight, dw_bias, dilated_weight, dilated_bias, pw_weight, pw_bias, dilation)

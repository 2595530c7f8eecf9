"""Multi-head dynamic local self-attention, MHDLSA (Li et al., "DLGSANet: Lightweight Dynamic Local and Global
Self-Attention Networks for Image Super-Resolution", ICCV 2023, arXiv 2301.02031): per-pixel predicted depthwise
kernels, the official ``_idynamic`` CuPy kernel (``NeonLeexiang/DLGSANet``,
``basicsr/archs/dlgsanet_idynamicdwconv_util.py``, from DemystifyLocalViT's ``IDynamicDWConv``) in PyTorch.

Each pixel has, per group ``g`` of channels, its own ``k x k`` kernel, and every channel of the group is filtered
with it over the zero-padded ``k x k`` window around the pixel::

    O[b, g, x, y, :] = Σ_{i, j < k} W[b, g, x, y, i k + j] · V[b, g, x + i - p, y + j - p, :],   p = (k - 1) / 2

(``V`` zero outside the grid, no bias, stride 1, no dilation: the official call). It is local attention whose
weights are predicted by a hypernetwork instead of read from ``q · k`` scores, and are not normalised (any
sign, no softmax): the layer (:class:`attnzoo.layers.DynamicLocalAttention`) predicts ``W`` from the input. The
official kernel lays the weights out as ``(B, G, k, k, H, W)``, here ``(B, G, X, Y, k²)`` (row-major ``i, j``).

Implementations: ``unfold`` (:mod:`.unfold`: ``F.unfold`` gathers every pixel's window, one contraction with the
weights; autograd's ``fold`` is the backward; O(N k² D) time and memory) and ``reference``
(:mod:`.reference`: the weights written into an explicit ``N x N`` matrix, a dense product). Verified: equal
forward and backward (float64, float32) on the cases of ``testing.py``; spatially constant weights equal a grouped
depthwise ``F.conv2d``; a loop transcription of the official CUDA kernel (forward, and its two backward
kernels) on copied inputs (``tests/test_dynamic_local.py``).
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_float_tensors, check_int, check_one_dtype_and_device

LAYOUT = "(B, G, X, Y, D)"
VARIANT_NAME = "dynamic_local_attention_2d"


def check_kernel_size(kernel_size: int) -> int:
    """An odd int >= 1 (the official padding ``(k - 1) // 2`` centres only odd kernels)."""
    check_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size!r}: expected an odd int >= 1 (a k x k window centred on its "
                         "pixel, zero padding (k - 1) / 2)")
    return kernel_size


def dynamic_local_attention_2d(value: torch.Tensor, weights: torch.Tensor, kernel_size: int,
                               impl: str = "auto") -> torch.Tensor:
    """MHDLSA's dynamic depthwise filtering (see the module): ``value`` ``(B, G, X, Y, D)`` (``G`` kernel groups of
    ``D`` channels) and per-pixel ``weights`` ``(B, G, X, Y, kernel_size²)`` -> ``(B, G, X, Y, D)``.

    ``kernel_size`` is odd; the window is zero-padded at the borders (it may exceed the grid). ``impl``:
    ``"auto"``, ``"unfold"`` or ``"reference"``. Time O(X Y k² D) per group.

    >>> import torch
    >>> v, w = torch.randn(2, 8, 16, 16, 6), torch.randn(2, 8, 16, 16, 49)
    >>> dynamic_local_attention_2d(v, w, kernel_size=7).shape
    torch.Size([2, 8, 16, 16, 6])
    """
    check_float_tensors({"value": value, "weights": weights}, 5, LAYOUT)
    check_kernel_size(kernel_size)
    b, g, x, y, d = value.shape
    expected = (b, g, x, y, kernel_size ** 2)
    if tuple(weights.shape) != expected:
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected (B, G, X, Y, kernel_size²) = "
                         f"{expected} for value {tuple(value.shape)} {LAYOUT}")
    check_one_dtype_and_device(value, weights, weights)
    if d == 0 or x == 0 or y == 0:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected non-empty spatial axes and D >= 1 {LAYOUT}")
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([value, weights]))
    if b == 0 or g == 0:
        return value.clone() + weights.sum() * 0
    return implementation.fn(value, weights, kernel_size=kernel_size)

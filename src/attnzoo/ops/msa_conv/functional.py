"""MSA-Conv, multi-head self-attention inside convolution windows (Zhang et al. 2023, "TiC: Exploring Vision
Transformer in Convolution", arXiv 2310.04134; official code StriveZs/MSA-Conv, commit 2d96f547).

Each output position ``(i, j)`` of a ``k x k`` convolution with stride ``s``, dilation ``d`` and zero padding
``p`` is one window; the pixel at the window's centre, ``c = (i·s - p + d(k-1)/2, j·s - p + d(k-1)/2)``, is its
query, and the ``k²`` dilated pixels of the window are its keys::

    O[i, j] = Σ_t softmax_t(q_c · k_{c + δ_t} · scale) v_{c + δ_t},   δ_t ∈ d · {-(k-1)/2 .. (k-1)/2}²

per head, output ``(X', Y')`` with ``X' = floor((X + 2p - d(k - 1) - 1) / s) + 1`` (``nn.Conv2d``'s arithmetic).
Window keys in the zero padding are not attended (``padding_keys="masked"``, the default), or attended as
zero keys and values with score 0 (``padding_keys="zeros"``: what the official im2col kernel computes).

Verified against the official code (read, and its pure-PyTorch check in ``validation.py`` transcribed into
``tests/test_msa_conv.py``): at stride 1 with ``padding = d(k-1)/2`` and ``padding_keys="zeros"`` this op equals
the official ``MSA_Conv2d_v1`` -> softmax over the ``k²`` window -> ``MSA_Conv2d_1_v1`` (one head over all
channels there, ``scale = C^-1/2``). Reconstructed: the paper text beyond its abstract was not available here;
in the official module ``MSA_Conv_2d`` the attention itself always runs at stride 1 and the stride belongs to
the ``k x k`` convolution that follows it, so strided windows here (queries at the strided centres) follow the
abstract's "self-attention within generalized convolutions" and are tested only by their reductions
(a window covering the image at stride = image size is global attention for the centre query; kernel 1 returns
the values at the strided positions; shapes follow conv arithmetic).

Implementations: ``gathered`` (each window's keys gathered once by a precomputed index table, scores and output
as batched GEMMs) and ``reference`` (``torch.nn.functional.unfold`` of keys and values, explicit masked
softmax). Time O(X' Y' k² (D + Dv)) per head, memory O(X' Y' k² (D + Dv)).
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.msa_conv.windows import PADDING_KEYS, conv_windows
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "msa_conv_attention"


def msa_conv_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       kernel_size: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1,
                       dilation: int | tuple[int, int] = 1, padding: int | tuple[int, int] | None = None, *,
                       padding_keys: str = "masked", scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Attention of each window centre over its ``k x k`` dilated window: ``(B, H, X, Y, D)`` queries and keys,
    ``(B, H, X, Y, Dv)`` values -> ``(B, H, X', Y', Dv)``.

    ``kernel_size`` (odd), ``stride``, ``dilation``: an int or one per axis, ``>= 1``; ``padding``: ``None``
    (``d(k - 1)/2``, the same size at stride 1) or ``0 <= p <= d(k - 1)/2`` per axis; ``padding_keys``:
    ``"masked"`` or ``"zeros"`` (see the module); ``scale`` defaults to ``D ** -0.5``; ``impl``: ``"auto"``,
    ``"gathered"`` or ``"reference"``.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 9, 9, 8)
    >>> msa_conv_attention(q, k, v, kernel_size=3, stride=2, dilation=2).shape
    torch.Size([1, 2, 5, 5, 8])
    """
    check_qkv(query, key, value, spatial_dims=2, layout=LAYOUT)
    windows = conv_windows(tuple(query.shape[2:4]), kernel_size, stride, dilation, padding)
    if padding_keys not in PADDING_KEYS:
        raise ValueError(f"padding_keys={padding_keys!r}: expected one of {list(PADDING_KEYS)}")
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value], dilation=max(windows.dilation) > 1,
        coverage=min(1.0, math.prod(windows.kernel_size) / math.prod(windows.grid)),
        length=math.prod(windows.grid)))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = value.new_zeros(*value.shape[:2], *windows.out_shape, value.shape[-1])
        return out + (query.sum() + key.sum() + value.sum()) * 0
    return implementation.fn(query, key, value, windows=windows, masked=padding_keys == "masked", scale=scale)

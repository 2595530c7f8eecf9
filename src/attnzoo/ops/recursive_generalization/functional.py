"""RG-SA, recursive-generalization self-attention (Chen et al., "Recursive Generalization Transformer for Image
Super-Resolution", ICLR 2024, arXiv 2303.06373, Sec. 3.2, Eq. 2-5): every query attends to a small fixed set of
representative tokens.

The layer (:class:`attnzoo.layers.RecursiveGeneralizationAttention`) builds the ``M`` representatives from the
whole feature map by the recursive generalization module (the same stride-4 depthwise convolution applied
``T`` times, then DWConv 3x3, a 1x1 convolution to ``C' = C · c_ratio`` channels, LayerNorm and GELU:
``M = HW / 16^T``) and projects keys and values from them; this op is the attention step, cross-attention of
all ``N`` queries to the ``M`` representative keys::

    O = softmax( Q Kᵀ · scale ) V,   Q (N x D), K (M x D), V (M x Dv)

Non-causal. Time O(N · M · (D + Dv)), memory O(N · M): linear in ``N`` for a fixed set of representatives
(``M = ceil(H / 4^T) · ceil(W / 4^T)``; the official rule grows ``T`` with the image, keeping ``M`` small).
``scale`` defaults to ``D^{-1/2}``; the official ``(head_dim · c_ratio)^{-1/2}`` is ``D^{-1/2}`` for the
reduced query/key head dim ``D = head_dim · c_ratio``. With the representatives equal to all tokens (``M = N``,
``K``, ``V`` the keys and values of every token) the op is dense softmax attention.

Implementations: ``gemm`` (matmul, softmax, matmul; forward and backward; measured faster than
``scaled_dot_product_attention`` on CPU at the official head dims) and ``reference``
(:func:`attnzoo.ops.dense_attention`, dense ``N x M`` scores with its exact NaN routing). Verified (tests/test_recursive_generalization.py):
the layer against the official ``RG_SA`` and ``Block`` (zhengchen1999/RGT ``basicsr/archs/rgt_arch.py``,
transcribed) with copied weights, dense attention for ``M = N``, one representative giving every query the same
output.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_float_tensors, check_one_dtype_and_device, check_scale

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "recursive_generalization_attention"


def _check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """Query ``(B, H, N, D)``, key ``(B, H, M, D)``, value ``(B, H, M, Dv)``, one dtype and device, nothing
    empty."""
    check_float_tensors({"query": query, "key": key, "value": value}, 4, LAYOUT)
    b, h, n, d = query.shape
    if key.shape[:2] != query.shape[:2] or key.shape[-1] != d or key.shape[2] == 0:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected the representative keys (B, H, M, D) = "
                         f"({b}, {h}, M >= 1, {d}), the query's B, H and D")
    if value.shape[:-1] != key.shape[:-1]:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected {tuple(key.shape[:-1])} in all but the "
                         "last (head) dim, one value per representative key")
    check_one_dtype_and_device(query, key, value)
    if d == 0 or value.shape[-1] == 0:
        raise ValueError(f"head dim is 0 (query {tuple(query.shape)}, value {tuple(value.shape)}); expected >= 1")
    if n == 0:
        raise ValueError(f"query has an empty token axis: shape {tuple(query.shape)} {LAYOUT}")


def recursive_generalization_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                       scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Attention of every query to the representative tokens. ``query`` ``(B, H, N, D)``, ``key``
    ``(B, H, M, D)``, ``value`` ``(B, H, M, Dv)`` -> ``(B, H, N, Dv)``.

    ``scale`` defaults to ``D^{-1/2}``; ``impl``: ``"auto"``, ``"gemm"`` or ``"reference"``. Time
    O(N · M · (D + Dv)).

    >>> import torch
    >>> q = torch.randn(2, 6, 64 * 64, 15)                 # every pixel of a 64x64 map queries ...
    >>> k, v = torch.randn(2, 6, 16, 15), torch.randn(2, 6, 16, 30)   # ... 4x4 representatives (T = 2)
    >>> recursive_generalization_attention(q, k, v).shape
    torch.Size([2, 6, 4096, 30])
    """
    _check_inputs(query, key, value)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1])
        return out + (query.sum() + key.sum() + value.sum()) * 0
    return implementation.fn(query, key, value, scale=scale)

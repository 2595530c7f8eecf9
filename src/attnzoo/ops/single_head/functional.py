"""Single-head attention, the token mixer of SHViT (Yun & Ro 2024, "SHViT: Single-Head Vision Transformer with
Memory Efficient Macro Design", arXiv 2401.16456), as its SHSA module computes it.

SHSA runs one head on a fraction ``C_p`` of the channels (the layer, :class:`attnzoo.layers.SingleHeadAttention`,
splits the channels, normalises and projects them); the attention itself is::

    O = softmax(Q Kᵀ · scale) V,    Q, K (B, 1, N, d_qk),  V (B, 1, N, C_p),  scale = d_qk ** -0.5

one head whose query/key width (16 in every SHViT config) differs from its value width ``C_p``. This op is
that attention, with its one-head layout checked, run by :func:`attnzoo.ops.softmax_attention`: no softmax code
of its own. Implementations: ``sdpa`` (``softmax_attention(impl="sdpa")``, the flash kernel; first-order
backward) and ``reference`` (dense scores, :func:`attnzoo.ops.dense_attention`). Time O(N² · (d_qk + C_p)),
memory O(N) for ``sdpa`` and O(N²) for the reference.

Verified: the layer equals timm's ``SHSA`` (``timm/models/shvit.py``, identical to the official
``model/shvit.py`` of ysj9909/SHViT) with copied weights in train and eval mode, and its attention with the
full channel fraction equals one-head :class:`attnzoo.layers.SoftmaxAttention` (``tests/test_single_head.py``).
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, empty_output

LAYOUT = "(B, 1, N, D)"
VARIANT_NAME = "shvit_single_head_attention"


def single_head_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None,
                          impl: str = "auto") -> torch.Tensor:
    """One-head softmax attention: ``(B, 1, N, d_qk)`` queries and keys, ``(B, 1, N, Dv)`` values ->
    ``(B, 1, N, Dv)``. ``scale`` defaults to ``d_qk ** -0.5``; ``impl``: ``"auto"``, ``"sdpa"`` or
    ``"reference"``. A heads axis other than 1 is refused (several heads: :func:`attnzoo.ops.softmax_attention`).
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    if query.shape[1] != 1:
        raise ValueError(f"query has shape {tuple(query.shape)}, {query.shape[1]} heads; expected one head "
                         f"{LAYOUT} (SHViT's single head; softmax_attention takes several)")
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value],
                                                                             length=key.shape[2]))
    if query.shape[0] == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, scale=scale)

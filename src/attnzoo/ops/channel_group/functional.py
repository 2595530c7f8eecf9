"""DaViT channel group attention (Ding et al., "DaViT: Dual Attention Vision Transformers", ECCV 2022,
arXiv 2204.03645, Sec. 3.2, Eq. 3): attention over *channel tokens* in groups.

The channels are split into ``G`` groups of ``C_g`` channels (the heads axis of the op); inside a group every
channel is a token whose feature vector is that channel over all ``N`` positions, so the scores are a
``C_g x C_g`` matrix built from sums over the whole image::

    A = softmax_j( Qᵀ K · scale )        (C_g x C_g, row i: query channel i over key channels j)
    O = V Aᵀ,   O[n, i] = Σ_j A[i, j] V[n, j]          (N x C_g)

which is ordinary softmax attention on the transposed tensors, ``(softmax(Qᵀ K s) Vᵀ)ᵀ``, with ``C_g``
tokens of dimension ``N``. ``scale`` defaults to ``C_g^{-1/2}`` (the paper's ``1/sqrt(C_g)`` and the official
``head_dim ** -0.5``; *not* the length of the dot products, ``N``: timm's ``ChannelAttentionV2`` with
``dynamic_scale`` uses ``N^{-1/2}``, pass ``scale=N ** -0.5`` for that). Non-causal; every output channel
summarises every position, so the op is global in space and linear in ``N``: time O(N · C_g²) per group,
memory O(C_g²) for the scores.

Naming: the official code (dingmyu/davit, timm's ``ChannelAttention``) calls its projections ``q, k, v`` but
computes ``softmax((k s)ᵀ v)`` and multiplies it into ``q``: the paper's equation with the roles renamed
(official ``k, v, q`` = paper ``Q, K, V``). This op takes the paper's roles; the layer
(:class:`attnzoo.layers.ChannelGroupAttention`) passes the official projections in the official roles, so a
timm checkpoint loads unchanged.

Implementations: ``gemm`` (two batched GEMMs, as timm; forward and backward) and ``reference`` (the
``C_g x C_g`` scores by ``einsum``, an explicit softmax): one algorithm, which is already the efficient one. Verified (tests/test_channel_group.py): both against a per-group loop of Eq. 3 as printed, against
timm 1.0.31's ``ChannelAttention`` (its source loaded from the wheel) with copied weights, permutation
equivariance over positions, and ``C_g = 1`` giving the value unchanged.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, empty_output

LAYOUT = "(B, G, N, C_g)"
VARIANT_NAME = "channel_group_attention"


def channel_group_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Channel group attention. ``query``, ``key``, ``value`` ``(B, G, N, C_g)`` (``G`` groups of ``C_g``
    channels, ``N`` positions) -> ``(B, G, N, C_g)``.

    Per group: ``A = softmax(Qᵀ K · scale)`` over the ``C_g`` key channels, output ``V Aᵀ``. ``scale`` defaults
    to ``C_g^{-1/2}``. ``impl``: ``"auto"``, ``"gemm"`` or ``"reference"``. Time O(N · C_g²) per group.

    >>> import torch
    >>> x = torch.randn(2, 3, 49, 8)                       # 3 groups of 8 channels on a 7x7 map
    >>> channel_group_attention(x, x, x).shape
    torch.Size([2, 3, 49, 8])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    if value.shape != key.shape:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected the key's shape {tuple(key.shape)} "
                         f"{LAYOUT}: the C_g x C_g scores mix the value's channels, one per key channel")
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, scale=scale)

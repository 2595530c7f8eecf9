"""Sparse global self-attention, SparseGSA (Li et al., "DLGSANet: Lightweight Dynamic Local and Global
Self-Attention Networks for Image Super-Resolution", ICCV 2023, arXiv 2301.02031), with the official
``SparseAttention._forward`` semantics (``NeonLeexiang/DLGSANet``, ``basicsr/archs/dlgsanet_arch.py``): Restormer's
transposed attention (MDTA) with ReLU in place of softmax.

Attention runs across the channels of each head, over all ``N`` pixels ("global"): with ``q, k, v`` ``(N, D)`` per
head, each query channel ``i`` has a similarity to each key channel ``j`` of the L2-normalised columns::

    A_ij = τ_h · <q_{:,i} / ‖q_{:,i}‖, k_{:,j} / ‖k_{:,j}‖>      (F.normalize over the pixels, eps 1e-12)
    A    = ReLU(A)                                              (the official activation; softmax gives MDTA)
    O_{n,i} = Σ_j A_ij v_{n,j}                                  (out = attn @ v, no row normalisation)

ReLU keeps only the positive similarities, the paper's "most useful similarity values", and rows are not
renormalised: a row whose similarities are all negative outputs zeros. ``top_k`` (not in the official code,
which keeps every positive similarity) keeps, before the activation, only the ``top_k`` largest similarities of
each query channel (ties to the lower channel index, :mod:`attnzoo.ops.topk`); the others contribute nothing
(zero for ReLU, ``-inf`` before the softmax). ``top_k = D`` is the official module; with ``activation="softmax"`` it
is MDTA, dense softmax attention over the ``D`` channels as tokens. ``τ_h`` is the learned per-head
``temperature`` (official init 1). Cost O(N D²) per head: linear in the number of pixels.

Implementations: ``gram`` (:mod:`.gram`: ``Qᵀ K`` formed once and divided by the outer product of the column
norms, so no normalised copy of ``Q`` or ``K`` is kept for the backward) and ``reference`` (:mod:`.reference`: the
official order, normalised copies, a dense ``D x D`` mask). Verified: equal forward and backward (float64,
float32) on the cases of ``testing.py``; the official ``SparseAttention`` and Restormer's ``Attention``
(``tests/official_dlgsanet.py``) on copied weights; ``top_k = D`` with softmax against dense softmax attention on
the transposed tensors (``tests/test_sparse_global.py``).
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_optional_int, check_qkv, check_tensor_like, empty_output

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "sparse_global_attention"
ACTIVATIONS = ("relu", "softmax")
NORM_EPS = 1e-12
"""``torch.nn.functional.normalize``'s default ``eps``, the official one: ``x / max(‖x‖, eps)``."""


def sparse_global_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, temperature: torch.Tensor,
                            *, top_k: int | None = None, activation: str = "relu",
                            impl: str = "auto") -> torch.Tensor:
    """SparseGSA (see the module): ``query``, ``key``, ``value`` ``(B, H, N, D)`` (``N`` pixels, ``D`` channels
    per head) and the per-head ``temperature`` ``(H,)`` -> ``(B, H, N, D)``.

    ``top_k``: ``None`` (every similarity, the official module) or ``1 <= top_k <= D`` similarities kept per query
    channel before the activation. ``activation``: ``"relu"`` (SparseGSA) or ``"softmax"`` (Restormer's MDTA).
    ``impl``: ``"auto"``, ``"gram"`` or ``"reference"``. Time O(B H N D²), memory O(B H (N D + D²)).

    >>> import torch
    >>> q = k = v = torch.randn(2, 6, 64 * 64, 8)                    # 6 heads of 8 channels, 64x64 pixels
    >>> sparse_global_attention(q, k, v, torch.ones(6), top_k=4).shape
    torch.Size([2, 6, 4096, 8])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    if value.shape != query.shape:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected the query's shape {tuple(query.shape)} "
                         f"{LAYOUT} (its channels are the keys of the channel attention)")
    check_tensor_like("temperature", temperature, (query.shape[1],), query)
    check_optional_int("top_k", top_k)
    channels = query.shape[-1]
    if top_k is not None and top_k > channels:
        raise ValueError(f"top_k={top_k!r}: expected at most the number of channels per head D={channels} (the keys "
                         "of the channel attention; top_k = D keeps every similarity)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}: expected one of {ACTIVATIONS}")
    features = {"top_k"} if top_k is not None else set()
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value, temperature], features=features, length=query.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value) + temperature.sum() * 0
    return implementation.fn(query, key, value, temperature, top_k=top_k, activation=activation)

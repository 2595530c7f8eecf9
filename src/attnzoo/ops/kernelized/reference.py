"""Kernelized attention with RPE, the oracle: the dense ``N x N`` definition with the same features.

``Z = ((φ(Q) φ(K)ᵀ) ⊙ C) V``, divided row-wise by ``rowsum((φ(Q) φ(K)ᵀ) ⊙ C)`` when normalised, with the
Toeplitz matrix ``C_ij = exp(b_{i-j})`` materialised (zero above the diagonal when causal). O(N² (m + Dv)).
Grouped KV heads are repeated to the query's heads and padded keys' ``φ(k)`` and values zeroed after the feature
map (:func:`kernel_features`, shared with the FFT path).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.kernelized.toeplitz import toeplitz_dense
from attnzoo.ops.lightning.sequences import drop_padded, share_kv_heads
from attnzoo.ops.linear.feature_maps import apply_feature_map


def kernel_features(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, feature_map: str,
                    projection: torch.Tensor | None, dropin: DropIn = DropIn()
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``φ(Q)``, ``φ(K)`` ``(B, H, N, D)`` -> ``(B, H, N, m)`` (``m = D`` for the deterministic maps) and the
    values, with the drop-in options applied: KV heads repeated to the query's ``H`` (``dropin.gqa``), padded
    tokens' ``φ(k)`` and ``v`` set to zero (after the feature map: ``elu(0) + 1 = 1``)."""
    key, value = share_kv_heads(key, value, query.shape[1])
    phi_k, value = drop_padded(apply_feature_map(key, feature_map, projection), value, dropin.key_padding_mask)
    return apply_feature_map(query, feature_map, projection), phi_k, value


def normalized(numerator: torch.Tensor, denominator: torch.Tensor, dropin: DropIn) -> torch.Tensor:
    """``numerator / denominator``; with key padding a query whose every key is padded (numerator and denominator
    exactly 0) gets 0, not NaN."""
    if dropin.key_padding_mask is not None:
        denominator = torch.where(denominator == 0, 1, denominator)
    return numerator / denominator


def kernelized_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, rpe: torch.Tensor,
                         feature_map: str, projection: torch.Tensor | None, is_causal: bool, normalize: bool,
                         block_size: int, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` q, ``(B, Hkv, N, D)`` k, ``(B, Hkv, N, Dv)`` v, ``rpe`` ``(H, 2N - 1)`` ->
    ``(B, H, N, Dv)``. ``block_size`` (the FFT path's causal blocks) is not used."""
    phi_q, phi_k, value = kernel_features(query, key, value, feature_map, projection, dropin)
    check_dense_size("the N x N weights of kernelized_rpe_attention's reference",
                     (*query.shape[:-1], key.shape[-2]), query.dtype, "impl='fft'")
    weights = torch.matmul(phi_q, phi_k.transpose(-1, -2)) * toeplitz_dense(rpe.exp(), query.shape[-2], is_causal)
    out = torch.matmul(weights, value)
    return normalized(out, weights.sum(-1, keepdim=True), dropin) if normalize else out

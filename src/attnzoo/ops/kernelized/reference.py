"""Kernelized attention with RPE, the oracle: the dense ``N x N`` definition with the same features.

``Z = ((φ(Q) φ(K)ᵀ) ⊙ C) V``, divided row-wise by ``rowsum((φ(Q) φ(K)ᵀ) ⊙ C)`` when normalised, with the
Toeplitz matrix ``C_ij = exp(b_{i-j})`` materialised (zero above the diagonal when causal). O(N² (m + Dv)).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size
from attnzoo.ops.kernelized.toeplitz import toeplitz_dense
from attnzoo.ops.linear.feature_maps import apply_feature_map


def kernel_features(query: torch.Tensor, key: torch.Tensor, feature_map: str,
                    projection: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``φ(Q)``, ``φ(K)``: ``(B, H, N, D)`` -> ``(B, H, N, m)`` (``m = D`` for the deterministic maps)."""
    return apply_feature_map(query, feature_map, projection), apply_feature_map(key, feature_map, projection)


def kernelized_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, rpe: torch.Tensor,
                         feature_map: str, projection: torch.Tensor | None, is_causal: bool, normalize: bool,
                         block_size: int) -> torch.Tensor:
    """``(B, H, N, D)`` q/k, ``(B, H, N, Dv)`` v, ``rpe`` ``(H, 2N - 1)`` -> ``(B, H, N, Dv)``. ``block_size``
    (the FFT path's causal blocks) is not used."""
    phi_q, phi_k = kernel_features(query, key, feature_map, projection)
    check_dense_size("the N x N weights of kernelized_rpe_attention's reference",
                     (*query.shape[:-1], key.shape[-2]), query.dtype, "impl='fft'")
    weights = torch.matmul(phi_q, phi_k.transpose(-1, -2)) * toeplitz_dense(rpe.exp(), query.shape[-2], is_causal)
    out = torch.matmul(weights, value)
    return out / weights.sum(-1, keepdim=True) if normalize else out

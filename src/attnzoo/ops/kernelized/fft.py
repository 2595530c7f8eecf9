"""Kernelized attention with RPE by FFT (arXiv 2106.12566, Algorithm 1): O(N log N · m · Dv) time, O(N · m · Dv)
memory.

Numerator ``D1 = C · A1`` with row ``j`` of ``A1`` the flattened outer product ``φ(k_j) v_jᵀ`` (``m · Dv``
channels), denominator ``D2 = C · φ(K)`` (``m`` channels), both in one Toeplitz product along the sequence
(kept as the last, contiguous dim); then ``z_i = φ(q_i)ᵀ D1_i / φ(q_i)ᵀ D2_i``. Non-causal: one ``2N``
circulant FFT; causal: the divide-and-conquer form of
:func:`attnzoo.ops.kernelized.toeplitz.causal_toeplitz_fft` (no dependence on future tokens). The ``m · Dv``
channels make the FFT memory-bound: on CPU it overtakes the dense O(N² (m + Dv)) form only at long sequences.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.kernelized.reference import kernel_features, normalized
from attnzoo.ops.kernelized.toeplitz import causal_toeplitz_fft, toeplitz_fft


def kernelized_fft(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, rpe: torch.Tensor,
                   feature_map: str, projection: torch.Tensor | None, is_causal: bool, normalize: bool,
                   block_size: int, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` q, ``(B, Hkv, N, D)`` k, ``(B, Hkv, N, Dv)`` v, ``rpe`` ``(H, 2N - 1)`` -> ``(B, H, N, Dv)``;
    grouped KV heads and key padding as the reference (:func:`kernel_features`)."""
    phi_q, phi_k, value = kernel_features(query, key, value, feature_map, projection, dropin)
    m, dv = phi_k.shape[-1], value.shape[-1]
    phi_k_t = phi_k.transpose(-1, -2)  # (B, H, m, N)
    channels = (phi_k_t[..., :, None, :] * value.transpose(-1, -2)[..., None, :, :]).flatten(2, 3)
    if normalize:
        channels = torch.cat([channels, phi_k_t], dim=2)
    coeff = rpe.exp()
    mixed = causal_toeplitz_fft(coeff, channels, block_size) if is_causal else toeplitz_fft(coeff, channels)
    phi_q_t = phi_q.transpose(-1, -2)[..., :, None, :]  # (B, H, m, 1, N)
    numerator = (phi_q_t * mixed[:, :, : m * dv].unflatten(2, (m, dv))).sum(2).transpose(-1, -2)
    if not normalize:
        return numerator
    return normalized(numerator, (phi_q * mixed[:, :, m * dv:].transpose(-1, -2)).sum(-1, keepdim=True), dropin)

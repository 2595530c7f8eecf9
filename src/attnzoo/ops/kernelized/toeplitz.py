"""Toeplitz matrix times a tensor along its last dim, ``y_i = Σ_j c_{i-j} x_j``: dense (for the oracle) and by
FFT in O(N log N).

Coefficients are indexed by the offset ``t = i - j`` (query minus key): ``coeff[..., N - 1 + t]``,
``t ∈ [-(N-1), N-1]``. Causal Toeplitz matrices keep only ``t >= 0``. The sequence is the last (contiguous)
dim, where CPU FFTs are ~3x faster than along a strided dim.

The non-causal product embeds the ``N x N`` Toeplitz matrix in a ``2N`` circulant (arXiv 2106.12566, Algorithm 1):
``irfft(rfft(col) · rfft([x; 0]))[:N]``. A causal product computed that way would let every output pick up
round-off from future inputs, so :func:`causal_toeplitz_fft` uses the divide-and-conquer ("online") form
instead: dense masked ``b x b`` diagonal blocks, then at each level of halving segments ``2h`` long the
contribution of a segment's first half to its second half by a ``2h`` circulant. Every FFT reads only inputs
earlier than the outputs it writes, so outputs depend on no future input at all (exact-zero gradients).
Time O(N b F + N log²(N / b) F) for ``F`` channels, memory O(N F).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def toeplitz_dense(coeff: torch.Tensor, n: int, causal: bool) -> torch.Tensor:
    """``(..., 2n - 1)`` coefficients -> the ``(..., n, n)`` matrix ``C_ij = coeff[n - 1 + i - j]`` (0 above the
    diagonal when ``causal``)."""
    idx = torch.arange(n, device=coeff.device)
    offset = idx[:, None] - idx[None, :]
    matrix = coeff[..., n - 1 + offset]
    return torch.where(offset >= 0, matrix, matrix.new_zeros(())) if causal else matrix


def _circulant_apply(col: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """First ``L`` entries of ``circ(col) @ [x; 0]`` along the last dim: ``col`` ``(H, 2L)``, ``x``
    ``(B, H, F, S, L)`` -> same shape."""
    size = col.shape[-1]
    spectrum = torch.fft.rfft(col, n=size)[:, None, None, :]
    return torch.fft.irfft(spectrum * torch.fft.rfft(x, n=size), n=size)[..., : x.shape[-1]]


def toeplitz_fft(coeff: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Non-causal ``x Cᵀ``: ``coeff`` ``(H, 2N - 1)``, ``x`` ``(B, H, F, N)`` -> ``(B, H, F, N)``; O(N log N · F)."""
    n = x.shape[-1]
    col = torch.cat([coeff[:, n - 1:], coeff.new_zeros(coeff.shape[0], 1), coeff[:, : n - 1]], dim=-1)
    return _circulant_apply(col, x[..., None, :]).squeeze(-2)


def causal_toeplitz_fft(coeff: torch.Tensor, x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Causal ``x Cᵀ`` with no dependence on future inputs: ``coeff`` ``(H, 2N - 1)`` (only offsets ``>= 0``
    are read), ``x`` ``(B, H, F, N)`` -> ``(B, H, F, N)``. ``block_size``: the dense diagonal blocks."""
    heads, n = coeff.shape[0], x.shape[-1]
    block = min(block_size, n)
    padded = block * 2 ** math.ceil(math.log2(math.ceil(n / block)))
    causal_coeff = F.pad(coeff[:, n - 1:], (0, padded - n))  # offsets 0 .. padded - 1
    x = F.pad(x, (0, padded - n))
    diagonal = toeplitz_dense(torch.cat([causal_coeff.new_zeros(heads, block - 1), causal_coeff[:, :block]], -1),
                              block, causal=True)
    y = torch.matmul(x.unflatten(-1, (padded // block, block)), diagonal.transpose(-1, -2)[:, None])
    y = y.flatten(-2)
    half = block
    while half < padded:
        # segments [s·2h, (s+1)·2h): first half (keys) -> second half (queries), offsets 1 .. 2h - 1
        keys = x.unflatten(-1, (padded // (2 * half), 2, half))[..., 0, :]
        col = torch.cat([causal_coeff[:, half: 2 * half], causal_coeff.new_zeros(heads, 1),
                         causal_coeff[:, 1:half]], dim=-1)
        y = y + F.pad(_circulant_apply(col, keys), (half, 0)).flatten(-2)
        half *= 2
    return y[..., :n]

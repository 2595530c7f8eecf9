"""SOFT, the oracle: the dense ``N x N`` Nyström reconstruction with the exact inverse.

``S̃ = A (Â + εI)⁻¹ Aᵀ`` with ``A = exp(-|q_i - l_a|²/2)`` and ``Â = exp(-|l_a - l_b|²/2)`` from explicit
differences, the inverse from ``torch.linalg.inv`` (``Â + εI`` is symmetric positive definite, so it equals
the Moore–Penrose pseudo-inverse; ``inv`` has a well-defined gradient where ``pinv``'s SVD may not), then
``S̃ V``. O(N² Dv + N M D + M³) time, O(N²) memory.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size


def gaussian_kernel_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``exp(-|a_i - b_j|² / 2)`` from explicit differences: ``(..., N, D)``, ``(..., M, D)`` -> ``(..., N, M)``."""
    return torch.exp(-(a[..., :, None, :] - b[..., None, :, :]).square().sum(-1) / 2)


def gaussian_kernel_expanded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same kernel from ``|a|² + |b|² - 2 a·b`` (the official torch path; GEMM, O(N M) memory), clamped at 0."""
    sq = a.square().sum(-1)[..., :, None] + b.square().sum(-1)[..., None, :] - 2 * torch.matmul(a, b.transpose(-1, -2))
    return torch.exp(-sq.clamp_min(0) / 2)


def soft_reference(query: torch.Tensor, value: torch.Tensor, landmarks: torch.Tensor, *, scale: float,
                   newton_iters: int, regularizer: float) -> torch.Tensor:
    """``(B, H, N, D)`` queries, ``(B, H, N, Dv)`` values, ``(B, H, M, D)`` landmarks -> ``(B, H, N, Dv)``.
    ``newton_iters`` is not used: the inverse is exact."""
    check_dense_size("the N x N Nystrom matrix of soft_attention's reference", (*query.shape[:-1], query.shape[-2]),
                     query.dtype, "impl='newton'")
    a = gaussian_kernel_exact(query * scale, landmarks)
    kernel = gaussian_kernel_exact(landmarks, landmarks)
    eye = torch.eye(kernel.shape[-1], dtype=kernel.dtype, device=kernel.device)
    attention = a @ torch.linalg.inv(kernel + regularizer * eye) @ a.transpose(-1, -2)
    return torch.matmul(attention, value)

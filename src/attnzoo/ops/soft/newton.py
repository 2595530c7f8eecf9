"""Newton–Schulz iteration for the inverse of SOFT's landmark kernel, and SOFT's fast path built on it.

``newton_inverse`` follows the official ``SOFT/kernel/inverse.py::newton_inv``: ``P = A + εI`` (ε = 0.01),
``V₀ = α P`` with ``α = 0.9 · 2 / (max_i Σ_j A_ij)²`` per matrix, then ``V ← 2V - V P V`` a fixed number of
times (20 in the official configs). For a symmetric positive definite ``P`` this converges to ``P⁻¹`` (= the
Moore–Penrose inverse) quadratically once ``|1 - α λ_min²| < 1/2``; the number of steps needed grows like
``log2(1 / (α λ_min²))``, so a badly conditioned ``A`` needs more than 20 (tested). As in the official
``_NewtonInverseKernel`` the iterations run without autograd and the backward is the analytic gradient of
the inverse, ``-Vᵀ G Vᵀ`` (exact when converged).
"""

from __future__ import annotations

import torch

from attnzoo.ops.soft.reference import gaussian_kernel_expanded
from attnzoo.validation import first_order_only


def _newton_iterate(matrix: torch.Tensor, iters: int, regularizer: float) -> torch.Tensor:
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    alpha = 0.9 * 2 / matrix.sum(-1).amax(-1) ** 2
    p = matrix + regularizer * eye
    v = alpha[..., None, None] * p
    for _ in range(iters):
        v = 2 * v - v @ p @ v
    return v


class _NewtonInverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix: torch.Tensor, iters: int, regularizer: float) -> torch.Tensor:  # noqa: ANN001
        with torch.no_grad():
            inverse = _newton_iterate(matrix, iters, regularizer)
        ctx.save_for_backward(inverse)
        return inverse

    @staticmethod
    @first_order_only("SOFT's Newton path (impl='newton', whose inverse gradient is exact only when converged)")
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (inverse,) = ctx.saved_tensors
        inverse_t = inverse.transpose(-1, -2)
        return -(inverse_t @ grad @ inverse_t), None, None


def newton_inverse(matrix: torch.Tensor, iters: int = 20, regularizer: float = 0.01) -> torch.Tensor:
    """Approximate ``(matrix + regularizer · I)⁻¹`` for a batch ``(..., M, M)`` of symmetric PSD matrices with
    non-negative entries (kernel matrices); differentiable (first order) through the analytic inverse gradient."""
    return _NewtonInverse.apply(matrix, iters, regularizer)


def soft_newton(query: torch.Tensor, value: torch.Tensor, landmarks: torch.Tensor, *, scale: float,
                newton_iters: int, regularizer: float) -> torch.Tensor:
    """``A (Â + εI)⁻¹ (Aᵀ V)`` with the Newton inverse, right to left: O(N·M·(D + Dv) + M³ · iters), no
    N x N."""
    q = query * scale
    a = gaussian_kernel_expanded(q, landmarks)
    inverse = newton_inverse(gaussian_kernel_expanded(landmarks, landmarks), newton_iters, regularizer)
    return torch.matmul(a, torch.matmul(inverse, torch.matmul(a.transpose(-1, -2), value)))

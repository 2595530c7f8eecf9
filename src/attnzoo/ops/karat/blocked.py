"""Fourier-KArAt, the fast path: query blocks with the Fourier features recomputed in the backward pass."""

from __future__ import annotations

import torch

from attnzoo.validation import first_order_only

BLOCK_ELEMENTS = 1 << 24
"""Feature elements (batch x heads x rows x N x 2G) per query block: 64 MiB in float32."""


def _harmonics(query: torch.Tensor, key: torch.Tensor, scale: float, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(m 𝒜)`` and ``sin(m 𝒜)``, ``(B, H, rows, N, G)`` each, for a block of query rows."""
    scores = query @ key.transpose(-1, -2) * scale
    angles = scores.unsqueeze(-1) * torch.arange(1, grid + 1, dtype=scores.dtype, device=scores.device)
    return torch.cos(angles), torch.sin(angles)


def _as_matrix(coef: torch.Tensor) -> torch.Tensor:
    """``(H, r, N, G)`` -> ``(H, N·G, r)``, rows in the order of the flattened ``(N, G)`` features."""
    return coef.permute(0, 2, 3, 1).flatten(1, 2)


class _BlockedKArAt(torch.autograd.Function):
    """``O = h (Wᵀ V)``, ``h = cos(m𝒜) a + sin(m𝒜) b`` over query blocks; saves ``h`` ``(B, H, N, r)``, never
    the features."""

    @staticmethod
    def forward(ctx, query, key, value, cos_coef, sin_coef, proj, scale: float):  # noqa: ANN001, ANN205
        batch, heads, n, _ = query.shape
        rank, grid = cos_coef.shape[1], cos_coef.shape[3]
        cos_matrix, sin_matrix = _as_matrix(cos_coef), _as_matrix(sin_coef)
        rows = max(1, BLOCK_ELEMENTS // max(1, batch * heads * n * 2 * grid))
        hidden = query.new_empty(batch, heads, n, rank)
        for start in range(0, n, rows):
            cos, sin = _harmonics(query[:, :, start:start + rows], key, scale, grid)
            hidden[:, :, start:start + rows] = cos.flatten(-2) @ cos_matrix + sin.flatten(-2) @ sin_matrix
        mixed = proj.transpose(-1, -2) @ value  # Wᵀ V, (B, H, r, Dv)
        ctx.save_for_backward(query, key, value, proj, cos_matrix, sin_matrix, hidden, mixed)
        ctx.scale, ctx.grid, ctx.rows = scale, grid, rows
        return hidden @ mixed

    @staticmethod
    @first_order_only("Fourier-KArAt's blocked path (impl='blocked')")
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        query, key, value, proj, cos_matrix, sin_matrix, hidden, mixed = ctx.saved_tensors
        scale, grid, rows = ctx.scale, ctx.grid, ctx.rows
        heads, n, rank = proj.shape
        grad_hidden = grad_out @ mixed.transpose(-1, -2)  # (B, H, N, r)
        grad_mixed = hidden.transpose(-1, -2) @ grad_out  # (B, H, r, Dv)
        grad_proj = (value @ grad_mixed.transpose(-1, -2)).sum(0)
        grad_value = proj @ grad_mixed
        grad_cos_matrix, grad_sin_matrix = torch.zeros_like(cos_matrix), torch.zeros_like(sin_matrix)
        grad_query, grad_key = torch.empty_like(query), torch.zeros_like(key)
        harmonics = torch.arange(1, grid + 1, dtype=query.dtype, device=query.device)
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            cos, sin = _harmonics(query[:, :, block], key, scale, grid)
            grad_block = grad_hidden[:, :, block]
            grad_cos_matrix += (cos.flatten(-2).transpose(-1, -2) @ grad_block).sum(0)
            grad_sin_matrix += (sin.flatten(-2).transpose(-1, -2) @ grad_block).sum(0)
            grad_cos = (grad_block @ cos_matrix.transpose(-1, -2)).unflatten(-1, (n, grid))
            grad_sin = (grad_block @ sin_matrix.transpose(-1, -2)).unflatten(-1, (n, grid))
            # d/dx [cos(mx), sin(mx)] = [-m sin(mx), m cos(mx)]
            grad_scores = ((cos * grad_sin - sin * grad_cos) @ harmonics) * scale
            grad_query[:, :, block] = grad_scores @ key
            grad_key += grad_scores.transpose(-1, -2) @ query[:, :, block]

        def as_coef(matrix: torch.Tensor) -> torch.Tensor:
            return matrix.unflatten(1, (n, grid)).permute(0, 3, 1, 2)

        return grad_query, grad_key, grad_value, as_coef(grad_cos_matrix), as_coef(grad_sin_matrix), grad_proj, None


def karat_blocked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, cos_coef: torch.Tensor,
                  sin_coef: torch.Tensor, proj: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)`` as ``h (Wᵀ V)`` with ``h`` built one query block at a time.

    The features ``cos(m𝒜)``, ``sin(m𝒜)`` ``(rows, N·G)`` of a block (``BLOCK_ELEMENTS`` in all) go straight
    into GEMMs with the coefficients ``(N·G, r)`` and are recomputed in the backward pass, so memory is
    O(N · r + block) instead of O(N² · G); ``σ̂`` ``(N, N)`` is never formed (``h (Wᵀ V)`` instead of
    ``(h Wᵀ) V``, saving O(N² · (r + Dv))). Time O(N² · G · (r + D)) forward, about twice that backward.
    First-order gradients only.
    """
    return _BlockedKArAt.apply(query, key, value, cos_coef, sin_coef, proj, scale)

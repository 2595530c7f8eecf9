"""ConViT's relative positions on a 2-D token grid (arXiv 2103.10697): the encodings
``r_ij = (Δcol, Δrow, Δcol² + Δrow²)`` of the positional attention, the locality ("convolutional") init of the
per-head position weights, and the non-locality measure (average attention-weighted distance).

Geometry (as ``get_rel_indices`` of the official code, facebookresearch/convit ``convit.py``, and of timm's
``timm/models/convit.py``): tokens are the grid ``(X, Y)`` flattened row-major (``i = row · Y + col``, what a
patch embedding's ``flatten(2)`` gives), ``Δ = pos_j - pos_i`` (key minus query); channel 0 is the offset along
the columns (the image's horizontal ``x`` of the paper), channel 1 along the rows (``y``), channel 2 the squared
distance. The official code builds it for a square grid only (``int(N ** 0.5)``); here ``X != Y`` is allowed,
with the same channel meaning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def relative_positions(grid: Sequence[int], *, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, N, 3)`` encodings ``r_ij = (Δcol, Δrow, Δcol² + Δrow²)`` of key ``j`` seen from query ``i`` on the
    row-major flattened ``grid = (X, Y)``, ``N = X · Y``. O(N²)."""
    rows, cols = grid
    index = torch.arange(rows * cols, device=device)
    row, col = index // cols, index % cols
    d_row = (row[None, :] - row[:, None]).to(dtype)
    d_col = (col[None, :] - col[:, None]).to(dtype)
    return torch.stack([d_col, d_row, d_col ** 2 + d_row ** 2], dim=-1)


def positional_logits(pos_weight: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """``(H, N, N)`` positional logits ``v_pos^h · r_ij`` of every head, from the ``(H, 3)`` weights
    (timm's / the official ``pos_proj.weight``; its bias, a per-head constant, cancels in the softmax).
    Independent of the batch: O(H · N²)."""
    r = relative_positions(grid, device=pos_weight.device, dtype=pos_weight.dtype)
    return torch.einsum("ijc,hc->hij", r, pos_weight)


def local_init_weights(num_heads: int, locality_strength: float) -> torch.Tensor:
    """``(H, 3)`` position weights of ConViT's local init (official ``GPSA.local_init``), for ``H = k²`` heads.

    Heads sit on a ``k x k`` grid: head ``h1 + k · h2`` gets ``α · (2 (h2 - c), 2 (h1 - c), -1)`` with
    ``c = (k - 1) / 2`` (``k`` even) or ``k // 2`` (``k`` odd), so that its logit is
    ``-α (‖Δ - Δ_h‖² - ‖Δ_h‖²)``: it attends around the offset ``Δ_h`` = ``h2 - c`` columns and ``h1 - c``
    rows (the paper's ``v_pos^h = -α (1, -2Δ^h_1, -2Δ^h_2)`` on ``r = (‖δ‖², δ_1, δ_2)``, channels reordered). The caller checks that ``H`` is a perfect
    square (the official code initialises only ``int(√H)²`` heads and leaves the others at random).
    """
    kernel = math.isqrt(num_heads)
    center = (kernel - 1) / 2 if kernel % 2 == 0 else kernel // 2
    weight = torch.empty(num_heads, 3, dtype=torch.float64)
    for h1 in range(kernel):
        for h2 in range(kernel):
            weight[h1 + kernel * h2] = torch.tensor([2 * (h2 - center), 2 * (h1 - center), -1.0],
                                                    dtype=torch.float64)
    return weight * locality_strength


def nonlocality(weights: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """ConViT's non-locality of attention weights ``(..., H, N, N)`` on the row-major ``grid`` (``N = X · Y``):
    per head, the mean over queries of ``Σ_j A_ij ‖pos_j - pos_i‖`` (the distance in patches), ``(..., H)``.

    Averaged over the batch first, this is the official ``get_attention_map`` (``einsum('nm,hnm->h') / N``).
    Rows that sum to 1 give a value between 0 (every query attends to itself) and the grid's largest distance.
    """
    n = math.prod(grid)
    if weights.dim() < 3 or tuple(weights.shape[-2:]) != (n, n):
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected (..., H, N, N) with N = {n} tokens "
                         f"of the grid {tuple(grid)}")
    distance = relative_positions(grid, device=weights.device, dtype=weights.dtype)[..., 2].sqrt()
    return (weights * distance).sum(-1).mean(-1)

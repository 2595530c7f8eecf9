"""MHDLSA's dynamic depthwise filtering, the oracle: each pixel's kernel written into an explicit ``N x N`` matrix
(row = output pixel, column = input pixel, zero outside the window or the grid), times the values (through
:func:`attnzoo.ops.dense.attend_values`: a non-finite value reaches only the pixels whose window holds it)."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import attend_values, check_dense_size


def window_columns(shape: tuple[int, int], kernel_size: int, device: torch.device) -> torch.Tensor:
    """``(N, k²)`` int64: the input pixel under offset ``(i, j)`` of output pixel ``(x, y)``, row-major
    ``x Y + y``, or ``N`` where it falls outside the grid."""
    (x, y), p = shape, (kernel_size - 1) // 2
    rows, cols = torch.meshgrid(torch.arange(x, device=device), torch.arange(y, device=device), indexing="ij")
    di, dj = torch.meshgrid(torch.arange(kernel_size, device=device) - p, torch.arange(kernel_size, device=device) - p,
                            indexing="ij")
    r = rows.reshape(-1, 1) + di.reshape(1, -1)
    c = cols.reshape(-1, 1) + dj.reshape(1, -1)
    inside = (r >= 0) & (r < x) & (c >= 0) & (c < y)
    return torch.where(inside, r * y + c, x * y)


def dynamic_local_reference(value: torch.Tensor, weights: torch.Tensor, *, kernel_size: int) -> torch.Tensor:
    """``(B, G, X, Y, D)`` value, ``(B, G, X, Y, k²)`` weights -> ``(B, G, X, Y, D)``; O(N²) time and memory."""
    b, g, x, y, d = value.shape
    n = x * y
    check_dense_size("the N x N filter matrix of dynamic_local_attention_2d's reference", (b, g, n, n + 1),
                     value.dtype, "impl='unfold'")
    columns = window_columns((x, y), kernel_size, value.device).expand(b, g, n, kernel_size ** 2)
    matrix = value.new_zeros(b, g, n, n + 1).scatter(-1, columns, weights.reshape(b, g, n, -1))[..., :n]
    inside = torch.zeros(n, n + 1, dtype=torch.bool, device=value.device).scatter(-1, columns[0, 0], True)[:, :n]
    return attend_values(matrix, value.reshape(b, g, n, d), inside).view(b, g, x, y, d)

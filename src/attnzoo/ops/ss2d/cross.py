"""CrossScan and CrossMerge of VMamba's SS2D (arXiv 2401.10166, Sec. 3.2), channels last.

The four scan orders of an ``H x W`` grid (``L = H W`` pixels, flat index ``p = i W + j``): ``k = 0`` row-major
(``p`` itself), ``k = 1`` column-major (``l = j H + i``), ``k = 2`` and ``k = 3`` the same two reversed.
:func:`cross_scan` lays a ``(B, H, W, C)`` map out as the four sequences ``(B, 4, L, C)``; :func:`cross_merge`
puts each direction's outputs back at their pixels and sums the four, ``(B, 4, L, C) -> (B, H, W, C)``. The two
are adjoint (``<cross_scan(x), y> = <x, cross_merge(y)>``) and ``cross_merge(cross_scan(x)) = 4 x``.

Verified against the official ``CrossScan`` / ``CrossMerge`` autograd functions (MzeroMiko/VMamba
``classification/models/csms6s.py`` at 25cda6a; the same code in HZAI-ZJNU/Mamba-YOLO
``ultralytics/nn/modules/common_utils_mbyolo.py`` at ec7851c), transcribed in ``tests/test_ss2d.py``, which
work channels first: ``xs[:, 0] = x.flatten(2, 3)``, ``xs[:, 1] = x.transpose(2, 3).flatten(2, 3)``,
``xs[:, 2:4] = xs[:, 0:2].flip(-1)``.
"""

from __future__ import annotations

import functools

import torch

DIRECTIONS = 4


@functools.lru_cache(maxsize=64)
def _orders(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(4, L)`` flat pixel index at each position of each scan order, and its inverse (position of each pixel)."""
    row_major = torch.arange(height * width)
    column_major = row_major.view(height, width).t().reshape(-1)
    orders = torch.stack([row_major, column_major, row_major.flip(0), column_major.flip(0)])
    return orders, orders.argsort(dim=1)


def scan_orders(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(4, L)`` scan orders of an ``height x width`` grid and their inverses, on ``device``."""
    orders, inverse = _orders(height, width)
    return orders.to(device), inverse.to(device)


def scan_directions(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A per-direction map ``(B, 4, H, W, C)`` -> ``(B, 4, L, C)``: direction ``k`` read in scan order ``k``."""
    orders, _ = scan_orders(height, width, t.device)
    flat = t.flatten(2, 3)
    return torch.stack([flat[:, k].index_select(1, orders[k]) for k in range(DIRECTIONS)], dim=1)


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, 4, H W, C)``: the map read in the four scan orders (module docstring)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x has shape {tuple(getattr(x, 'shape', ()))}; expected 4-D (B, H, W, C)")
    height, width = x.shape[1:3]
    return scan_directions(x[:, None].expand(-1, DIRECTIONS, -1, -1, -1), height, width)


def cross_merge(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, 4, H W, C)`` -> ``(B, H, W, C)``: each direction's sequence put back at its pixels, the four summed."""
    if not isinstance(ys, torch.Tensor) or ys.dim() != 4 or ys.shape[1] != DIRECTIONS \
            or ys.shape[2] != height * width:
        raise ValueError(f"ys has shape {tuple(getattr(ys, 'shape', ()))}; expected (B, 4, H·W, C) with "
                         f"H·W = {height}·{width}")
    _, inverse = scan_orders(height, width, ys.device)
    merged = sum(ys[:, k].index_select(1, inverse[k]) for k in range(DIRECTIONS))
    return merged.unflatten(1, (height, width))

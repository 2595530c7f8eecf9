"""The geometry of MSA-Conv windows (arXiv 2310.04134): convolution arithmetic per axis, the window centres that
act as queries, and the key index table of the fast path. One source for the reference and the fast path."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from attnzoo.validation import per_axis

PADDING_KEYS = ("masked", "zeros")
"""How the keys of a window that fall in the zero padding are treated: ``"masked"`` (not attended) or
``"zeros"`` (attended as zero keys and values, score 0: the official CUDA kernel's im2col)."""


@dataclass(frozen=True)
class ConvWindows:
    """Sliding ``kernel_size`` windows of ``dilation`` over a ``grid`` zero-padded by ``padding``, at ``stride``
    (per axis). Output size per axis ``floor((L + 2p - d(k - 1) - 1) / s) + 1`` (``torch.nn.Conv2d``'s)."""

    grid: tuple[int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]

    @property
    def out_shape(self) -> tuple[int, int]:
        """``(X', Y')``: the number of window positions per axis."""
        return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, d, p in
                     zip(self.grid, self.kernel_size, self.stride, self.dilation, self.padding))

    def centres(self, axis: int) -> torch.Tensor:
        """Input coordinates of the window centres on ``axis``: ``i·s - p + d(k - 1)/2`` (the query of window i)."""
        k, s, d, p = self.kernel_size[axis], self.stride[axis], self.dilation[axis], self.padding[axis]
        return torch.arange(self.out_shape[axis]) * s - p + d * (k - 1) // 2

    def offsets(self, axis: int) -> torch.Tensor:
        """Key offsets from the centre on ``axis``: ``d·(t - (k - 1)/2)`` for ``t < k``."""
        k, d = self.kernel_size[axis], self.dilation[axis]
        return d * (torch.arange(k) - (k - 1) // 2)


def window_options(kernel_size: int | tuple[int, int], stride: int | tuple[int, int], dilation: int | tuple[int, int],
                   padding: int | tuple[int, int] | None) -> tuple[tuple[int, int], ...]:
    """``(kernel, stride, dilation, padding)`` per axis, checked apart from any image size: odd
    ``kernel_size >= 1``, ``stride, dilation >= 1``, ``padding`` ``None`` (``d(k - 1)/2``: "same" size at
    stride 1) or ``0 <= p <= d(k - 1)/2`` (so every window centre is a pixel)."""
    kernel = per_axis(kernel_size, 2, "kernel_size")
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"kernel_size={kernel_size!r}: expected odd sizes (each window is centred on its query)")
    strides = per_axis(stride, 2, "stride")
    dilations = per_axis(dilation, 2, "dilation")
    half = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilations))
    pads = half if padding is None else per_axis(padding, 2, "padding", minimum=0)
    if any(p > h for p, h in zip(pads, half)):
        raise ValueError(f"padding={padding!r}: expected at most dilation·(kernel_size - 1)/2 = {half} per axis "
                         "(a larger padding puts window centres, the queries, in the padding)")
    return kernel, strides, dilations, pads


def conv_windows(grid: tuple[int, int], kernel_size: int | tuple[int, int], stride: int | tuple[int, int],
                 dilation: int | tuple[int, int], padding: int | tuple[int, int] | None) -> ConvWindows:
    """Validated :class:`ConvWindows` (the options as :func:`window_options` checks them) whose dilated window
    is no larger than the padded image on each axis."""
    kernel, strides, dilations, pads = window_options(kernel_size, stride, dilation, padding)
    for axis, (n, k, d, p) in enumerate(zip(grid, kernel, dilations, pads)):
        if d * (k - 1) + 1 > n + 2 * p:
            raise ValueError(f"kernel_size={kernel_size!r}, dilation={dilation!r}: the dilated window "
                             f"d·(k - 1) + 1 = {d * (k - 1) + 1} on axis {axis} is larger than the padded image "
                             f"{n} + 2·{p} = {n + 2 * p}; expected a smaller kernel or dilation, or more padding")
    return ConvWindows(tuple(grid), kernel, strides, dilations, pads)


@functools.lru_cache(maxsize=64)
def key_index(windows: ConvWindows, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(query_flat (L,), key_flat (L, k²), inside (L, k²))``: the flat grid index of each window's centre and
    keys (row-major, ``L = X'·Y'``; a key in the padding gets index ``X·Y``, one past the grid) and whether each
    key lies inside the image."""
    (nx, ny), axes = windows.grid, []
    for axis, n in enumerate(windows.grid):
        centre = windows.centres(axis)
        keys = centre[:, None] + windows.offsets(axis)[None, :]
        axes.append((centre, keys, (keys >= 0) & (keys < n)))
    (cx, kx, ix), (cy, ky, iy) = axes
    query_flat = (cx[:, None] * ny + cy[None, :]).flatten()
    inside = (ix[:, None, :, None] & iy[None, :, None, :]).flatten(2).flatten(0, 1)
    flat = (kx[:, None, :, None] * ny + ky[None, :, None, :]).flatten(2).flatten(0, 1)
    flat = torch.where(inside, flat, nx * ny)
    return query_flat.to(device), flat.to(device), inside.to(device)

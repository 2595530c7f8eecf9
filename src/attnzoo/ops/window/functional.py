"""2-D (shifted) window attention, Swin style (Liu et al. 2021, arXiv 2103.14030), as used by DaViT (arXiv 2204.03645,
spatial window attention, no shift, no bias in timm), LaMamba-Diff (arXiv 2408.02615, window 8, shift 4, bias table)
and GC ViT (arXiv 2206.09959, local windows).

The grid is rolled by ``-s``, cut into non-overlapping ``w x w`` windows, and each token attends to the tokens
of its window that come from the same region of the unrolled grid (Swin's shifted-window region mask)::

    O_i = softmax_{j in W(i)}( q_i · k_j · scale + B[h, dy_ij, dx_ij] ) v_j

with the optional relative position bias ``B`` of shape ``(heads, 2wx - 1, 2wy - 1)`` indexed by
``key - query`` (``attnzoo.positional``; Swin's table is indexed by ``query - key``: ours is
``swin_table.flip(1, 2)``). Differences from Swin: masked pairs get ``-inf``, not ``-100`` (identical to
float32 precision in practice), and the grid must be divisible by the window (the layer pads, the op does
not). Layout ``(B, H, X, Y, D)``; ``X % wx == Y % wy == 0``, ``0 <= s < w`` per axis.

Implementations: ``windowed`` (roll + partition + batched SDPA; time O(N · w² · D), forward and backward),
``flex`` (compiled FlexAttention; backward on CUDA only), ``reference`` (dense N x N mask). Verified: the
region rule and bias against an explicit roll / ``img_mask`` slices / ``window_partition`` /
``get_relative_position_index`` construction transcribed from Swin's ``SwinTransformerBlock`` code (as in
timm's ``swin_transformer.py``; read, not run); window = grid with shift 0 is full attention with the bias
(tests/test_window.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.ops.window.pattern import WindowPattern
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, check_tensor_like, empty_output, per_axis

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "window_attention_2d"


def window_pattern(shape: tuple[int, int], window_size: int | Sequence[int],
                   shift_size: int | Sequence[int]) -> WindowPattern:
    """Validated pattern: per axis ``w >= 1`` divides the grid and ``0 <= shift < w``."""
    window = per_axis(window_size, 2, "window_size")
    shift = per_axis(shift_size, 2, "shift_size", minimum=0)
    for axis, (length, w, s) in enumerate(zip(shape, window, shift)):
        if length % w:
            raise ValueError(f"window_size={window_size}: the grid (X, Y) = {shape} must be divisible by the "
                             f"window on every axis; spatial axis {axis} has length {length}, window {w}")
        if s >= w:
            raise ValueError(f"shift_size={shift_size}: expected 0 <= shift < window_size on every axis; "
                             f"spatial axis {axis} has shift {s}, window {w}")
    return WindowPattern(shape, window, shift)


def dispatch_windowed(variant: str, impl: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      pattern: WindowPattern, rpb: torch.Tensor | None, scale: float | None) -> torch.Tensor:
    """The tail every windowed op shares (window attention, GC ViT's global query attention): check the bias
    ``(H, 2wx - 1, 2wy - 1)`` and the scale (default ``D ** -0.5``), select ``variant``'s implementation ``impl``
    and run it on the validated ``pattern`` (an empty batch or head axis gives an empty output)."""
    if rpb is not None:
        check_tensor_like("rpb", rpb, (query.shape[1], *(2 * w - 1 for w in pattern.window)), query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    tensors = [t for t in (query, key, value, rpb) if t is not None]
    implementation = select_implementation(variant, impl, CallFacts.of(tensors, bias=rpb is not None))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, pattern=pattern, rpb=rpb, scale=scale)


def window_attention_2d(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        window_size: int | Sequence[int], shift_size: int | Sequence[int] = 0,
                        rpb: torch.Tensor | None = None, scale: float | None = None,
                        impl: str = "auto") -> torch.Tensor:
    """(Shifted) window attention. Inputs ``(B, H, X, Y, D)`` (value ``(B, H, X, Y, Dv)``) -> ``(B, H, X, Y, Dv)``.

    ``window_size`` / ``shift_size``: one value or one per axis; ``rpb``: optional ``(H, 2wx - 1, 2wy - 1)``
    bias; ``scale`` defaults to ``D ** -0.5``; ``impl``: ``"auto"``, ``"windowed"``, ``"flex"`` or
    ``"reference"``. Time O(X · Y · wx · wy · D).
    """
    check_qkv(query, key, value, spatial_dims=2, layout=LAYOUT)
    pattern = window_pattern(tuple(query.shape[2:4]), window_size, shift_size)
    return dispatch_windowed(VARIANT_NAME, impl, query, key, value, pattern, rpb, scale)

"""(Shifted) window attention, the fused CPU kernel (:mod:`attnzoo.ops.native`): each query sees the keys of its
window directly (no roll, no partition copies, no region mask); forward and backward (input and bias gradients).

Swin's region rule (:mod:`attnzoo.ops.window.pattern`) is per axis "same group ``(i + w - s) // w``", and a group
is a run of consecutive positions, so every query sees a rectangle: the plan of group ``g`` on an axis of length
``L`` is ``[max(0, (g - 1) w + s), min(L - 1, g w + s - 1)]`` (the wrapped pixels ``i < s`` form group 0, the
last group holds ``w - s`` pixels when shifted). The bias table ``(H, 2wx - 1, 2wy - 1)`` indexed ``key - query``
is the kernel's own (radius ``w - 1``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.native import LocalPlan, local_plan, native_local_attention, register_plan
from attnzoo.ops.window.pattern import WindowPattern


def window_native_plan(pattern: WindowPattern) -> LocalPlan:
    """Per axis, the run of positions in each query's group (module docstring)."""
    starts, counts = [], []
    for length, w, s in zip(pattern.shape, pattern.window, pattern.shift):
        group = (torch.arange(length) + w - s) // w
        start = torch.clamp((group - 1) * w + s, min=0)
        end = torch.clamp(group * w + s - 1, max=length - 1)
        starts.append(start)
        counts.append(end - start + 1)
    return local_plan(pattern.shape, starts, counts, (1, 1), pattern.window, pattern.radius)


def window_plan_arguments(pattern: WindowPattern) -> list[int]:
    """``pattern`` as the integers of the ``"window"`` plan: shape, window, shift."""
    return [*pattern.shape, *pattern.window, *pattern.shift]


def _decode(x: int, y: int, wx: int, wy: int, sx: int, sy: int) -> LocalPlan:
    return window_native_plan(WindowPattern((x, y), (wx, wy), (sx, sy)))


register_plan("window", _decode)


def window_native(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: WindowPattern,
                  rpb: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, X, Y, Dv)``; time O(N · wx · wy · D), memory O(N · wx · wy) in the
    backward."""
    return native_local_attention(query, key, value, "window", window_plan_arguments(pattern), scale=scale, rpb=rpb)

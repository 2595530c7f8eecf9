"""Sliding-window attention with sink tokens, the fused CPU kernel (:mod:`attnzoo.ops.native`): each query sees its
window of keys and the sinks outside it; forward and backward, O(N · (window + sinks)) memory."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.native import LocalPlan, local_plan, native_local_attention, register_plan
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern


def sliding_window_native_plan(pattern: SlidingWindowPattern) -> LocalPlan:
    """The window of query ``i`` (``[i - w + 1, i]`` causal, ``[i - w//2, i + w//2]`` centred, cut at the ends) and
    the sinks its window does not hold, both read from the pattern's mask function."""
    i = torch.arange(pattern.length)
    start = torch.clamp(pattern.window_low(i), min=0)
    end = i if pattern.is_causal else torch.clamp(i + pattern.window // 2, max=pattern.length - 1)
    sinks = torch.arange(pattern.num_sink_tokens)
    zero = torch.zeros((), dtype=torch.long)
    visible = pattern.mask_mod()(zero, zero, i[:, None], sinks[None, :])
    in_window = (sinks[None, :] >= start[:, None]) & (sinks[None, :] <= end[:, None])
    return local_plan(pattern.shape, [start], [end - start + 1], (1,), (pattern.span,),
                      sinks=visible & ~in_window)


def _decode(length: int, window: int, is_causal: int, num_sink_tokens: int) -> LocalPlan:
    return sliding_window_native_plan(SlidingWindowPattern(length, window, bool(is_causal), num_sink_tokens))


register_plan("sliding_window", _decode)


def sliding_window_plan_arguments(pattern: SlidingWindowPattern) -> list[int]:
    """``pattern`` as the integers of the ``"sliding_window"`` plan."""
    return [pattern.length, pattern.window, int(pattern.is_causal), pattern.num_sink_tokens]


def sliding_window_native(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                          pattern: SlidingWindowPattern, scale: float, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)``; time O(N · (window + s) · D). Grouped KV heads are read in place."""
    return native_local_attention(query, key, value, "sliding_window", sliding_window_plan_arguments(pattern),
                                  scale=scale)

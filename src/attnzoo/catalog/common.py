"""Pieces shared by the variant specs: implementation capabilities, inputs for cases, future masks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from attnzoo.masks import unflatten_index
from attnzoo.ops.flex import flex_unavailable
from attnzoo.registry import FLOAT_DTYPES, Capabilities

REFERENCE = Capabilities(devices=frozenset({"cpu", "cuda"}), backward_devices=frozenset({"cpu", "cuda"}))
TILED = Capabilities(devices=frozenset({"cpu", "cuda"}), backward_devices=frozenset({"cpu", "cuda"}))
FLEX = Capabilities(devices=frozenset({"cpu", "cuda"}), backward_devices=frozenset({"cuda"}),
                    dtypes=FLOAT_DTYPES, auto_devices=frozenset({"cuda"}), available=flex_unavailable)


def random_tensor(shape: Sequence[int], dtype: torch.dtype, device: str, generator: torch.Generator) -> torch.Tensor:
    """Standard normal values drawn in float64 on CPU from ``generator`` (reproducible across dtypes/devices)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)


def qkv_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
               generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``query``, ``key``, ``value`` of shape ``(batch, heads, *grid, head_dim)`` for a case."""
    shape = (case["batch"], case["heads"], *case["grid"], case["head_dim"])
    return {name: random_tensor(shape, dtype, device, generator) for name in ("query", "key", "value")}


def grid_future_mask(grid: Sequence[int], causal: Sequence[bool]) -> torch.Tensor | None:
    """``(N, N)``: key j lies in query i's future when j is later than i on any causal axis."""
    if not any(causal):
        return None
    n = math.prod(grid)
    idx = torch.arange(n)
    future = torch.zeros(n, n, dtype=torch.bool)
    for qc, kc, c in zip(unflatten_index(idx[:, None], grid), unflatten_index(idx[None, :], grid), causal):
        if c:
            future |= kc > qc
    return future


def case_future_mask(default_causal: bool) -> Callable[[Mapping[str, Any]], torch.Tensor | None]:
    """A variant's ``future_mask`` for cases with a ``"grid"`` (or a 1-D ``"length"``) and an optional
    ``"is_causal"`` (one flag or one per axis, ``default_causal`` when absent)."""
    def future_mask(case: Mapping[str, Any]) -> torch.Tensor | None:
        grid = tuple(case["grid"]) if "grid" in case else (case["length"],)
        causal = case.get("is_causal", default_causal)
        return grid_future_mask(grid, (causal,) * len(grid) if isinstance(causal, bool) else tuple(causal))

    return future_mask

"""The geometry of a native local-attention call: which keys each query sees, as per-axis runs.

A :class:`LocalPlan` describes any pattern in which every query sees, on each axis of a grid of up to three axes,
a run of ``count`` positions ``dilation`` apart starting at ``start`` (their product is the query's rectangle of
keys), optionally plus the first ``s`` tokens as sinks: neighborhood attention (shifted, causal, dilated windows),
sliding windows and Swin's (shifted) windows are all of this form. The backward needs the inverse too (which
queries see a key): for windows whose start and end never decrease along the axis, those queries are a run as
well, computed here with ``searchsorted`` and checked.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

AXES = 3
SLAB_BYTES = 64 << 20
"""Budget of the backward's P and dS buffers: KV heads are processed in slabs that fit it (at least one a slab)."""


@dataclass(frozen=True, eq=False)
class LocalPlan:
    """Per-axis runs of a local pattern on a grid padded to three axes (hashed by identity, cached by callers).

    ``axes`` int64, flat: per axis a ``(4, shape[a])`` block holding, for each coordinate, the first key it sees
    and their count, then the first query that sees it and their count; ``sinks (N, s)`` uint8:
    which sink tokens each query sees beyond its rectangle. ``window`` / ``inverse_window``: the most keys a query
    (queries a key) sees per axis; ``radius``: the reach of the relative position bias table per axis.
    """

    shape: tuple[int, int, int]
    dilation: tuple[int, int, int]
    window: tuple[int, int, int]
    inverse_window: tuple[int, int, int]
    radius: tuple[int, int, int]
    axes: torch.Tensor
    sinks: torch.Tensor


def _inverse_runs(start: torch.Tensor, count: torch.Tensor, dilation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each key position, the first query whose run holds it and how many do: within each dilation group the
    runs' starts and ends must be non-decreasing (else the queries of a key are not a run: ValueError)."""
    length = start.shape[0]
    first, total = torch.zeros(length, dtype=torch.long), torch.zeros(length, dtype=torch.long)
    for group in range(dilation):
        positions = torch.arange(group, length, dilation)
        low = (start[positions] - group) // dilation  # in-group index of the first key
        high = low + count[positions] - 1
        if bool((low.diff() < 0).any() or (high.diff() < 0).any()):
            raise ValueError("native local attention needs windows whose start and end never decrease along an "
                             "axis; this pattern's do (use impl='tiled' or 'reference')")
        keys = torch.arange(positions.shape[0])
        lo_query = torch.searchsorted(high, keys, side="left")  # first query whose run ends at or after the key
        hi_query = torch.searchsorted(low, keys, side="right") - 1  # last query whose run starts at or before it
        first[positions] = group + dilation * lo_query
        total[positions] = torch.clamp(hi_query - lo_query + 1, min=0)
    return first, total


def local_plan(shape: Sequence[int], starts: Sequence[torch.Tensor], counts: Sequence[torch.Tensor],
               dilation: Sequence[int], window: Sequence[int], radius: Sequence[int] | None = None,
               sinks: torch.Tensor | None = None) -> LocalPlan:
    """The plan of a grid of ``shape`` (1 to 3 axes) whose query at coordinate ``c`` of axis ``a`` sees the keys
    ``starts[a][c] + dilation[a] * t`` for ``t < counts[a][c]`` (real coordinates), at most ``window[a]`` of them.

    ``radius``: reach of a relative position bias table per axis (zeros when there is none); ``sinks (N, s)`` bool:
    sink tokens each query sees outside its rectangle. Axes are padded in front to three.
    """
    pad = AXES - len(shape)
    shape3 = (1,) * pad + tuple(shape)
    ones = [torch.zeros(1, dtype=torch.long)] * pad
    starts3 = ones + [s.long().cpu() for s in starts]
    counts3 = [torch.ones(1, dtype=torch.long)] * pad + [c.long().cpu() for c in counts]
    dilation3 = (1,) * pad + tuple(dilation)
    blocks, inverse = [], []
    for start, count, d in zip(starts3, counts3, dilation3):
        first, total = _inverse_runs(start, count, d)
        blocks.append(torch.stack([start, count, first, total]).flatten())
        inverse.append(int(total.max()))
    tokens = math.prod(shape3)
    sink_table = torch.zeros(tokens, 0, dtype=torch.uint8) if sinks is None else sinks.to(torch.uint8).cpu()
    return LocalPlan(shape3, dilation3, (1,) * pad + tuple(window), tuple(inverse),
                     (0,) * pad + tuple(radius or (0,) * len(shape)), torch.cat(blocks).contiguous(),
                     sink_table.contiguous())


class Problem(ctypes.Structure):
    """``AzProblem`` of ``kernel/local_attention.h``."""

    _fields_ = [(name, ctypes.c_int64) for name in
                ("batch", "heads", "kv_heads", "dim", "value_dim", "num_sinks", "threads", "slab_bytes")] + [
        (name, ctypes.c_int64 * 3) for name in ("shape", "window", "inverse_window", "dilation", "radius")] + [
        ("axis", ctypes.POINTER(ctypes.c_int64) * 3), ("sink_visible", ctypes.POINTER(ctypes.c_uint8)),
        ("scale", ctypes.c_double)]


def problem(plan: LocalPlan, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float,
            threads: int) -> Problem:
    """The C description of a call on ``(B, H, N, D)`` / ``(B, Hkv, N, D)`` / ``(B, Hkv, N, Dv)`` contiguous
    tensors; ``plan`` must stay alive while it is used."""
    axes, sinks = plan.axes, plan.sinks
    p = Problem(batch=query.shape[0], heads=query.shape[1], kv_heads=key.shape[1], dim=query.shape[3],
                value_dim=value.shape[3], num_sinks=sinks.shape[1], threads=threads, slab_bytes=SLAB_BYTES,
                scale=scale)
    p.shape[:], p.window[:], p.inverse_window[:] = plan.shape, plan.window, plan.inverse_window
    p.dilation[:], p.radius[:] = plan.dilation, plan.radius
    offset = 0
    for a in range(AXES):
        p.axis[a] = ctypes.cast(axes.data_ptr() + offset * axes.element_size(), ctypes.POINTER(ctypes.c_int64))
        offset += 4 * plan.shape[a]
    p.sink_visible = ctypes.cast(sinks.data_ptr(), ctypes.POINTER(ctypes.c_uint8))
    return p

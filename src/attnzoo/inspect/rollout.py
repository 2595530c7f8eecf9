"""Attention rollout (Abnar & Zuidema 2020, arXiv 2005.00928) of captured maps, and the per-token heat it gives.

The rollout itself is :func:`attnzoo.ops.dcal.attention_rollout` (DCAL's, verified there against the official
``compute_joint_attention``); this module feeds it what :func:`~attnzoo.inspect.capture_attention` recorded and
reduces it to one value per input token for drawing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.inspect.capture import AttentionCapture, AttentionMap
from attnzoo.ops.dcal.rollout import attention_rollout

__all__ = ["attention_rollout", "layer_attentions", "token_heat"]


def layer_attentions(captured: AttentionCapture | Sequence[AttentionMap]) -> list[torch.Tensor]:
    """The ``(B, H, N, N)`` weights of the captured maps that cover their layer's whole token grid, in forward
    order (one per block for a model of one mixer per block): the input of :func:`attention_rollout`. Raises
    ``ValueError`` when there is none, or when the maps' grids differ (blocks at different resolutions: roll out
    each stage apart)."""
    maps = captured.maps if isinstance(captured, AttentionCapture) else list(captured)
    full = [m for m in maps if m.covers_grid]
    if not full:
        partial = sorted({f"{m.module} {tuple(m.weights.shape)} on grid {m.grid}" for m in maps})
        raise ValueError("no captured map covers its layer's whole token grid (Nq = Nk = tokens); rollout needs "
                         f"(B, H, N, N) maps; captured: {partial or 'nothing'}")
    grids = {m.grid for m in full}
    if len(grids) > 1:
        raise ValueError(f"the captured maps are on different token grids {sorted(grids)}; roll out the maps of one "
                         "grid (one stage) at a time")
    return [m.weights for m in full]


def token_heat(rollout: torch.Tensor, grid: tuple[int, ...] | None = None, query: int | None = None) -> torch.Tensor:
    """One value per input token from a ``(B, N, N)`` rollout (or flow): the row of token ``query``, or the mean
    over all query rows when ``None`` (the attention behind a mean-pooled output, as the ViT's); reshaped to
    ``(B, *grid)`` when ``grid`` is given."""
    if not isinstance(rollout, torch.Tensor) or rollout.dim() != 3 or rollout.shape[1] != rollout.shape[2]:
        raise ValueError(f"rollout has shape {tuple(getattr(rollout, 'shape', ()))}; expected (B, N, N)")
    n = rollout.shape[-1]
    if query is not None and not (isinstance(query, int) and not isinstance(query, bool) and 0 <= query < n):
        raise ValueError(f"query={query!r}: expected None (mean over queries) or a token index in [0, {n})")
    heat = rollout.mean(1) if query is None else rollout[:, query]
    if grid is None:
        return heat
    size = 1
    for side in grid:
        size *= side
    if size != n:
        raise ValueError(f"grid={tuple(grid)} has {size} tokens; the rollout has {n}")
    return heat.reshape(heat.shape[0], *grid)

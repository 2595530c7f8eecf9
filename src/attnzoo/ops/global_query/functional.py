"""GC ViT global query attention (Hatamizadeh et al., "Global Context Vision Transformers", ICML 2023,
arXiv 2206.09959, Sec. 3.2, Eq. 4-6): window attention whose queries are *global* tokens.

The grid is cut into non-overlapping ``wx x wy`` windows; the keys and values of each window come from its own
tokens, while the queries are one window's worth of global query tokens ``Q_g`` (produced by the global query
generator from the whole feature map, :class:`attnzoo.layers.GlobalQueryGenerator`) shared by *every* window::

    O[w, i] = softmax_{j in window w}( q_g[i] · k[w, j] · scale + B[h, dy_ij, dx_ij] ) v[w, j]

with slot ``i`` of each window reading global query ``i`` and the optional relative position bias ``B``
``(heads, 2wx - 1, 2wy - 1)`` indexed by ``key - query`` inside the window (attnzoo's convention; a Swin / GC
ViT / timm ``relative_position_bias_table`` loads as ``table.flip(1, 2)``). Global context enters through the
queries only: no shift, no mask. ``query`` may also hold one query per token (``(B, H, X, Y, D)``, each
window's own *local* queries): that is the unshifted window attention of GC ViT's local blocks, identical to
:func:`attnzoo.ops.window_attention_2d` with ``shift_size=0``. The grid must be divisible by the window (the
layer's resolution is; nothing is padded here). Non-causal. Time O(X · Y · wx · wy · D), memory
O(X · Y · wx · wy).

Implementations: ``windowed`` (window partition of the keys and values, the global queries repeated per
window, one batched SDPA with the bias; forward and backward) and ``reference`` (the global queries tiled over
the grid, then the dense N x N window mask of :mod:`attnzoo.ops.window`). Verified (tests/test_global_query.py):
both against timm 1.0.31's ``WindowAttentionGlobal`` (its source loaded from the wheel) with copied weights,
local queries against ``window_attention_2d``, identical windows giving identical outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.ops.window.functional import dispatch_windowed, window_pattern
from attnzoo.validation import (
    check_float_tensors,
    check_one_dtype_and_device,
)

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "global_query_attention"


def _check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """Key ``(B, H, X, Y, D)``, value ``(B, H, X, Y, Dv)``, query ``(B, H, qx, qy, D)`` of one dtype and device
    (the query's grid is checked against the window by the caller)."""
    check_float_tensors({"query": query, "key": key, "value": value}, 5, LAYOUT)
    b, h, _, _, d = query.shape
    if key.shape[:2] != query.shape[:2] or key.shape[-1] != d:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected (B, H, X, Y, D) = ({b}, {h}, X, Y, {d}), "
                         "the query's B, H and D")
    if value.shape[:-1] != key.shape[:-1]:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected {tuple(key.shape[:-1])} in all but the "
                         f"last (head) dim {LAYOUT}, the key's")
    check_one_dtype_and_device(query, key, value)
    if d == 0 or value.shape[-1] == 0:
        raise ValueError(f"head dim is 0 (query {tuple(query.shape)}, value {tuple(value.shape)}); expected >= 1")
    if any(s == 0 for s in key.shape[2:4]):
        raise ValueError(f"key has an empty spatial axis: shape {tuple(key.shape)} {LAYOUT}")


def global_query_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           window_size: int | Sequence[int], rpb: torch.Tensor | None = None,
                           scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Window attention with global queries. ``key`` ``(B, H, X, Y, D)``, ``value`` ``(B, H, X, Y, Dv)``,
    ``query`` ``(B, H, wx, wy, D)`` (the global queries, shared by every window) or ``(B, H, X, Y, D)`` (each
    window's own queries) -> ``(B, H, X, Y, Dv)``.

    ``window_size``: one value or ``(wx, wy)``, dividing ``(X, Y)``; ``rpb``: optional ``(H, 2wx - 1, 2wy - 1)``
    bias indexed ``key - query``; ``scale`` defaults to ``D ** -0.5``; ``impl``: ``"auto"``, ``"windowed"`` or
    ``"reference"``. Time O(X · Y · wx · wy · D).

    >>> import torch
    >>> k = v = torch.randn(2, 4, 14, 14, 8)               # a 14x14 map: four 7x7 windows
    >>> q_global = torch.randn(2, 4, 7, 7, 8)              # one window of global queries
    >>> global_query_attention(q_global, k, v, window_size=7).shape
    torch.Size([2, 4, 14, 14, 8])
    """
    _check_inputs(query, key, value)
    pattern = window_pattern(tuple(key.shape[2:4]), window_size, 0)
    if tuple(query.shape[2:4]) not in (pattern.window, pattern.shape):
        b, h, x, y, d = key.shape
        raise ValueError(f"query has shape {tuple(query.shape)}; expected the global queries of one window "
                         f"(B, H, wx, wy, D) = ({b}, {h}, {pattern.window[0]}, {pattern.window[1]}, {d}), or one "
                         f"query per token ({b}, {h}, {x}, {y}, {d})")
    return dispatch_windowed(VARIANT_NAME, impl, query, key, value, pattern, rpb, scale)

"""Hybrid-scale attention of SG-Former (Ren et al., "SG-Former: Self-guided Transformer with Evolving Token
Reallocation", ICCV 2023, arXiv 2308.12216, section 3.3), one scale group per call.

The paper (as secondary summaries give it; its text was out of reach here) splits the heads into groups; group
``j`` attends to keys and values aggregated ``s_j x s_j`` -> 1, in windows of ``M x M`` reduced keys for
``M·s_j x M·s_j`` full-resolution queries, so each group mixes a different granularity; each key's received
attention is its *significance*. For one group (queries ``Q`` on the ``X x Y`` grid, keys ``K``, values ``V`` on
the ``X/s x Y/s`` grid, window ``W(i)`` of query ``i``)::

    O_i = softmax_{j in W(i)}( q_i · k_j · scale ) v_j
    S_j = mean_{heads} mean_{i : j in W(i)} P_ij,   S(pixel p) = S_{cell(p)}   (nearest upsampling)

The official code (``OliverRensu/SG-Former`` ``sgformer.py``, ``Attention`` with ``mask=False``, read) has two
groups of ``h/2`` heads: a global one (``s = sr_ratio``, one window over the whole reduced map, keys from
``GELU(LN(Conv_{s x s, stride s}(x)))``) and a local one (``s = 1``, ``7 x 7`` windows), and a significance map
``local + global`` (means of the detached probabilities over heads and queries, the global one upsampled with
``F.interpolate(mode="nearest")``); :class:`attnzoo.layers.HybridScaleAttention` builds those groups (the
aggregation, projections and heads split are the layer's) and calls this op once per group. At the official
sizes (224² input: 56/8 = 28/4 = 14/2 = 7) the reduced map is one 7-key window, so the code is the paper's
formulation with ``M = 7``. This op returns the significance with its gradient; the layer detaches it, as the
official code does.

Layout ``(B, H, X, Y, D)`` queries, ``(B, H, X/s_x, Y/s_y, D)`` keys, ``(B, H, X/s_x, Y/s_y, Dv)`` values;
``X % s_x == Y % s_y == 0`` and the reduced grid divisible by the window. Non-causal.

Implementations: ``windowed`` (window partition + batched SDPA, or batched GEMMs + softmax when the
significance is returned; O(N · M² · D)) and ``reference`` (dense ``N x N/s²`` scores with the explicit mask).
Verified (tests/test_sg_former.py): one window = PVT spatial-reduction attention (dense attention over the
reduced keys), ``s = 1`` = window attention (:func:`attnzoo.ops.window_attention_2d`), and the official
``Attention`` (``mask=False``) transcribed with copied weights, its output and significance map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.ops.hybrid_scale.pattern import HybridScalePattern
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_float_tensors, check_one_dtype_and_device, check_scale, per_axis

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "hybrid_scale_attention"


def hybrid_scale_pattern(shape: tuple[int, int], reduction: int | Sequence[int],
                         window_size: int | Sequence[int] | None) -> HybridScalePattern:
    """Validated pattern: ``reduction`` divides the query grid, the window (default: the whole reduced grid)
    divides the reduced grid, per axis."""
    factors = per_axis(reduction, 2, "reduction")
    for axis, (length, s) in enumerate(zip(shape, factors)):
        if length % s:
            raise ValueError(f"reduction={reduction!r}: expected a divisor of the query grid (X, Y) = {shape} on "
                             f"every axis; spatial axis {axis} has length {length}, reduction {s}")
    key_shape = tuple(n // s for n, s in zip(shape, factors))
    window = key_shape if window_size is None else per_axis(window_size, 2, "window_size")
    for axis, (length, w) in enumerate(zip(key_shape, window)):
        if length % w:
            raise ValueError(f"window_size={window_size!r}: expected a divisor of the reduced key grid "
                             f"{key_shape} on every axis (query grid {shape} / reduction {factors}); spatial axis "
                             f"{axis} has {length} keys, window {w}")
    return HybridScalePattern(tuple(shape), factors, window)


def _check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: HybridScalePattern) -> None:
    expected = (*query.shape[:2], *pattern.key_shape, query.shape[-1])
    if tuple(key.shape) != expected:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected (B, H, X/s_x, Y/s_y, D) = {expected} (query "
                         f"{tuple(query.shape)}, reduction {pattern.reduction})")
    if value.shape[:-1] != key.shape[:-1]:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected {tuple(key.shape[:-1])} in all but the "
                         f"last (head) dim, the key's")
    if query.shape[-1] == 0 or value.shape[-1] == 0:
        raise ValueError(f"head dim is 0 (query {tuple(query.shape)}, value {tuple(value.shape)}); expected >= 1")


def hybrid_scale_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           reduction: int | Sequence[int] = 1, window_size: int | Sequence[int] | None = None, *,
                           scale: float | None = None, return_significance: bool = False,
                           impl: str = "auto") -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One scale group of hybrid-scale attention. ``query`` ``(B, H, X, Y, D)``, ``key`` ``(B, H, X/s_x, Y/s_y,
    D)``, ``value`` ``(B, H, X/s_x, Y/s_y, Dv)`` -> ``(B, H, X, Y, Dv)``, and with ``return_significance`` also
    the significance map ``(B, X, Y)`` (each key cell's attention, averaged over heads and the queries that see
    it, repeated over the ``s_x x s_y`` pixels it summarises).

    ``reduction``: the scale factor ``s`` (one int or one per axis) by which the keys' grid is smaller;
    ``window_size``: ``M``, windows of reduced keys (``None``: one window, global attention); ``scale``
    defaults to ``D ** -0.5``; ``impl``: ``"auto"``, ``"windowed"`` or ``"reference"``. Time O(X·Y·M²·D).

    >>> import torch
    >>> from attnzoo.ops import hybrid_scale_attention
    >>> q = torch.randn(2, 4, 8, 8, 16)
    >>> kv = torch.randn(2, 4, 4, 4, 16)  # keys reduced 2x per axis
    >>> out, significance = hybrid_scale_attention(q, kv, kv, reduction=2, return_significance=True)
    >>> out.shape, significance.shape
    (torch.Size([2, 4, 8, 8, 16]), torch.Size([2, 8, 8]))
    """
    check_float_tensors({"query": query, "key": key, "value": value}, 5, LAYOUT)
    check_one_dtype_and_device(query, key, value)
    if any(s == 0 for s in query.shape[2:4]):
        raise ValueError(f"query has an empty spatial axis: shape {tuple(query.shape)} {LAYOUT}")
    pattern = hybrid_scale_pattern(tuple(query.shape[2:4]), reduction, window_size)
    _check_inputs(query, key, value, pattern)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    check_flag("return_significance", return_significance)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros((*query.shape[:-1], value.shape[-1])) + (query.sum() + key.sum() + value.sum()) * 0
        return (out, out.new_zeros((query.shape[0], *pattern.shape))) if return_significance else out
    return implementation.fn(query, key, value, pattern=pattern, scale=scale, return_significance=return_significance)

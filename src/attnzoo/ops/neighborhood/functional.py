"""Neighborhood attention 1-D / 2-D / 3-D (arXiv 2403.04690, "Faster Neighborhood Attention", NATTEN semantics).

Each query at grid position ``i`` attends to the ``prod(k)`` keys of its neighborhood: per axis the ``k``
nearest positions of its dilation group, the window shifted inward at the borders so every query sees
exactly ``k`` keys per axis (causal axes: the ``k`` latest positions up to ``i``, not shifted)::

    O_i = softmax(q_i K_{N(i)}ᵀ · scale + B[h, j - i]) V_{N(i)}

with the optional relative positional bias ``B`` (NAT/DiNAT, table ``(heads, 2k_1 - 1, ..., 2k_n - 1)``,
offsets in dilation-group units). Layout ``(B, H, *grid, D)``. Implementations: ``reference`` (N x N mask,
O(N^2)), ``tiled`` (CPU/GPU tiled GEMMs, forward and backward, O(N · region) memory), ``flex`` (compiled
FlexAttention; forward and backward on CUDA, forward only on CPU). Verified against the mask definition
read from NATTEN's ``backends/flex.py`` (``get_na_flex_mask``); invariants tested: k = L is dense
attention, k = 1 returns V, dilation decomposes into strided sub-grids.

Drop-in options (:mod:`attnzoo.ops.dropin` conventions, the grid's token axes flattened row-major to ``N``):
``enable_gqa=True`` with ``key``/``value`` of ``Hkv`` heads, ``attn_mask`` ``(N, N)`` / ``(B, 1, N, N)`` /
``(B, H, N, N)`` over the flattened grid, ``key_padding_mask`` ``(B, N)``, ``dropout_p`` and ``return_weights``
(weights ``(B, H, N, N)``). The reference runs all of them (:func:`attnzoo.ops.dropin.dropin_attention` with the
neighborhood mask and the RPB), the tiled kernel grouped KV heads, FlexAttention none; keys must have the query's
grid (no cross-attention) and ``cu_seqlens`` is declared by none (both refused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from attnzoo.masks import NeighborhoodPattern
from attnzoo.ops.dropin import DropIn, check_dropin
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import (
    check_float_tensors,
    check_scale,
    check_tensor_like,
    empty_output,
    per_axis,
    per_axis_flags,
)

LAYOUTS = {1: "(B, H, N, D)", 2: "(B, H, X, Y, D)", 3: "(B, H, X, Y, Z, D)"}
VARIANT_NAMES = {1: "neighborhood_attention_1d", 2: "neighborhood_attention_2d", 3: "neighborhood_attention_3d"}


def neighborhood_pattern(shape: Sequence[int], kernel_size: int | Sequence[int], dilation: int | Sequence[int],
                         is_causal: bool | Sequence[bool]) -> NeighborhoodPattern:
    """Validated pattern: odd kernel per axis, ``kernel * dilation <= length`` per axis."""
    ndim = len(shape)
    kernels = per_axis(kernel_size, ndim, "kernel_size")
    dilations = per_axis(dilation, ndim, "dilation")
    causal = per_axis_flags(is_causal, ndim, "is_causal")
    for axis, (length, k, d) in enumerate(zip(shape, kernels, dilations)):
        if k % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: every entry must be odd (a window centred on the "
                             f"query), got {k} on spatial axis {axis}")
        if k * d > length:
            raise ValueError(f"kernel_size={kernel_size} with dilation={dilation} needs kernel*dilation <= length "
                             f"on every axis; spatial axis {axis} has length {length} < {k}*{d} = {k * d}")
    return NeighborhoodPattern(tuple(shape), kernels, dilations, causal)


def check_grid_dropin(ndim: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                      attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                      cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False, dropout_p: float = 0.0,
                      return_weights: bool = False) -> DropIn:
    """``(B, Hq, *grid, D)`` / ``(B, Hkv, *grid, D)`` / ``(B, Hkv, *grid, Dv)`` with one grid for all three (no
    cross-attention), then :func:`~attnzoo.ops.dropin.check_dropin` on the grids flattened row-major to ``N``."""
    layout = LAYOUTS[ndim]
    check_float_tensors({"query": query, "key": key, "value": value}, 3 + ndim, layout)
    grid = tuple(query.shape[2:-1])
    for name, t in (("key", key), ("value", value)):
        if tuple(t.shape[2:-1]) != grid:
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected the query's grid {grid} "
                             f"(query {tuple(query.shape)} {layout}): no cross-attention, keys on the query's grid")
    if any(s == 0 for s in grid):
        raise ValueError(f"query has an empty spatial axis: shape {tuple(query.shape)} {layout}")
    return check_dropin(*(t.flatten(2, -2) for t in (query, key, value)), attn_mask=attn_mask,
                        key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens, enable_gqa=enable_gqa,
                        dropout_p=dropout_p, return_weights=return_weights)


def _neighborhood_attention(ndim: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            kernel_size: int | Sequence[int], dilation: int | Sequence[int],
                            is_causal: bool | Sequence[bool], rpb: torch.Tensor | None, scale: float | None,
                            impl: str, **options: object) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    dropin = check_grid_dropin(ndim, query, key, value, **options)
    pattern = neighborhood_pattern(tuple(query.shape[2:-1]), kernel_size, dilation, is_causal)
    if rpb is not None:
        table = (query.shape[1], *(2 * k - 1 for k in pattern.kernel_size))
        check_tensor_like("rpb", rpb, table, query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    tensors = [t for t in (query, key, value, rpb) if t is not None]
    coverage = math.prod(pattern.kernel_size) / max(1, math.prod(pattern.shape))  # keys seen per query / tokens
    facts = CallFacts.of(tensors, causal=any(pattern.is_causal), dilation=any(d > 1 for d in pattern.dilation),
                         bias=rpb is not None, coverage=coverage, features=dropin.features)
    implementation = select_implementation(VARIANT_NAMES[ndim], impl, facts)
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = empty_output(query, key, value)
        n = pattern.num_tokens
        return (out, query.new_zeros(*query.shape[:2], n, n)) if dropin.return_weights else out
    return implementation.fn(query, key, value, pattern=pattern, rpb=rpb, scale=scale, dropin=dropin)


def neighborhood_attention_1d(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              kernel_size: int, dilation: int = 1, is_causal: bool = False,
                              rpb: torch.Tensor | None = None, scale: float | None = None,
                              impl: str = "auto", *, attn_mask: torch.Tensor | None = None,
                              key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                              enable_gqa: bool = False, dropout_p: float = 0.0,
                              return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """1-D neighborhood attention. Inputs ``(B, H, N, D)`` (value ``(B, H, N, Dv)``) -> ``(B, H, N, Dv)``.

    ``rpb``: optional ``(H, 2k - 1)`` bias; ``scale`` defaults to ``D ** -0.5``; ``impl``: ``"auto"``,
    ``"tiled"``, ``"flex"`` or ``"reference"``. Time O(N · k · D). Drop-in options (``attn_mask``,
    ``key_padding_mask``, ``enable_gqa``, ``dropout_p``, ``return_weights``): see the module docstring; with
    ``return_weights`` the call returns ``(out, weights)``.
    """
    return _neighborhood_attention(1, query, key, value, kernel_size, dilation, is_causal, rpb, scale, impl,
                                   attn_mask=attn_mask, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens,
                                   enable_gqa=enable_gqa, dropout_p=dropout_p, return_weights=return_weights)


def neighborhood_attention_2d(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              kernel_size: int | Sequence[int], dilation: int | Sequence[int] = 1,
                              is_causal: bool | Sequence[bool] = False, rpb: torch.Tensor | None = None,
                              scale: float | None = None, impl: str = "auto", *,
                              attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                              cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False,
                              dropout_p: float = 0.0,
                              return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """2-D neighborhood attention. Inputs ``(B, H, X, Y, D)`` -> ``(B, H, X, Y, Dv)``.

    ``kernel_size``, ``dilation``, ``is_causal``: one value or one per axis; ``rpb``: ``(H, 2kx - 1, 2ky - 1)``.
    Time O(X · Y · kx · ky · D). Drop-in options as :func:`neighborhood_attention_1d`, over the grid flattened
    row-major (``key_padding_mask`` ``(B, X · Y)``).
    """
    return _neighborhood_attention(2, query, key, value, kernel_size, dilation, is_causal, rpb, scale, impl,
                                   attn_mask=attn_mask, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens,
                                   enable_gqa=enable_gqa, dropout_p=dropout_p, return_weights=return_weights)


def neighborhood_attention_3d(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              kernel_size: int | Sequence[int], dilation: int | Sequence[int] = 1,
                              is_causal: bool | Sequence[bool] = False, rpb: torch.Tensor | None = None,
                              scale: float | None = None, impl: str = "auto", *,
                              attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                              cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False,
                              dropout_p: float = 0.0,
                              return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """3-D neighborhood attention. Inputs ``(B, H, X, Y, Z, D)`` -> ``(B, H, X, Y, Z, Dv)``.

    ``rpb``: ``(H, 2kx - 1, 2ky - 1, 2kz - 1)``. Time O(X · Y · Z · kx · ky · kz · D). Drop-in options as
    :func:`neighborhood_attention_1d`, over the grid flattened row-major.
    """
    return _neighborhood_attention(3, query, key, value, kernel_size, dilation, is_causal, rpb, scale, impl,
                                   attn_mask=attn_mask, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens,
                                   enable_gqa=enable_gqa, dropout_p=dropout_p, return_weights=return_weights)

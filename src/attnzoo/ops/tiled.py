"""The tiled kernel for local attention on n-D grids (registered for CPU and CUDA): forward and backward as
batched GEMMs.

Queries are cut into tiles (per axis: ``tile`` consecutive positions of one dilation group); each tile
gathers once the key region that covers the windows of all its queries (per axis ``region`` positions),
computes its scores with one batched GEMM, masks them with the pattern's own mask function (so the tile
masks are derived from the same source as the dense reference), applies softmax and a second GEMM.
Nothing of size N x N is ever built: time O(N · region · D), memory O(N · region) where ``region`` is
the product of per-axis regions (about ``(tile + k - 1)^n`` for a window of k per axis). Backward is
hand-written (:class:`_TileAttention`: FlashAttention's identities on the saved probabilities) and so is the
gathers' (:class:`_GatherTokens`: a token-major scatter-add); first order only (differentiating twice raises
:class:`~attnzoo.NotSupportedError`), and a tile with a non-finite key or value takes the dense route so that
NaN reaches only the queries that see it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from attnzoo.masks import MaskMod
from attnzoo.ops.dense import dense_attention, has_non_finite
from attnzoo.registry import NotSupportedError
from attnzoo.validation import first_order_only

IMPLEMENTATION = "the tiled kernel (attnzoo.ops.tiled, impl='tiled' or 'grouped')"

WindowLow = Callable[[torch.Tensor], torch.Tensor]
"""Maps real coordinates on one axis to the in-group lower bound of their window."""


@dataclass(frozen=True)
class AxisTiles:
    """The tiling of one axis.

    ``query_index (tiles, tile)``: real coordinates of each tile's queries (the last repeated to fill a tile);
    ``key_index (tiles, region)``: real coordinates of each tile's key region;
    ``output_index (length,)``: for each position, its slot in the flattened ``(tiles, tile)`` query layout.
    """

    query_index: torch.Tensor
    key_index: torch.Tensor
    output_index: torch.Tensor


def axis_tiles(length: int, dilation: int, tile: int, span: int, window_low: WindowLow,
               device: torch.device | str = "cpu") -> AxisTiles:
    """Tile one axis whose windows cover at most ``span`` consecutive in-group positions.

    Each dilation group ``g`` (positions ``g, g + d, ...``) is tiled separately. A tile of queries
    ``[t0, t0 + tile)`` (in-group) has windows that start no earlier than ``window_low(t0)`` and, since window
    starts never decrease, end before ``window_low(t0) + tile - 1 + span``; its region starts there, moved
    inward to stay inside the group. ``tile`` is reduced so that a region fits in the shortest group.
    """
    shortest = length // dilation
    region = min(tile + span - 1, shortest)
    tile = max(1, min(tile, region - span + 1))
    queries, keys, output = [], [], torch.empty(length, dtype=torch.long)
    slot = 0
    for group in range(dilation):
        group_length = (length - group + dilation - 1) // dilation
        starts = torch.arange(0, group_length, tile)
        inner = torch.clamp(starts[:, None] + torch.arange(tile), max=group_length - 1)
        low = window_low(group + dilation * starts)
        region_start = torch.clamp(low, min=0)
        region_start = torch.minimum(region_start, torch.full_like(region_start, group_length - region))
        queries.append(group + dilation * inner)
        keys.append(group + dilation * (region_start[:, None] + torch.arange(region)))
        positions = torch.arange(group_length)
        output[group + dilation * positions] = slot + positions
        slot += len(starts) * tile
    return AxisTiles(torch.cat(queries).to(device), torch.cat(keys).to(device), output.to(device))


def _flat_index(indices: Sequence[torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    """Row-major flat grid index of per-axis index tables ``(tiles_a, n_a)`` -> ``(prod tiles, prod n)``."""
    ndim = len(indices)
    flat = torch.zeros((), dtype=torch.long, device=indices[0].device)
    for axis, (index, size) in enumerate(zip(indices, shape)):
        view = [1] * (2 * ndim)
        view[axis], view[ndim + axis] = index.shape
        flat = flat * size + index.reshape(view)
    return flat.reshape(math.prod(flat.shape[:ndim]), -1)


def _output_index(axes: Sequence[AxisTiles]) -> torch.Tensor:
    """For each grid position (row-major), its slot in the flattened ``(tiles, queries per tile)`` layout."""
    tiles = torch.zeros((), dtype=torch.long, device=axes[0].output_index.device)
    within = torch.zeros_like(tiles)
    for axis, a in enumerate(axes):
        count, size = a.query_index.shape
        view = [1] * len(axes)
        view[axis] = -1
        tiles = tiles * count + (a.output_index // size).reshape(view)
        within = within * size + (a.output_index % size).reshape(view)
    per_tile = math.prod([a.query_index.shape[1] for a in axes])
    return (tiles * per_tile + within).reshape(-1)


@dataclass(frozen=True, eq=False)
class TilePlan:
    """Everything about a tiling that depends only on the pattern and shape: built once, cached by callers
    (hashed by identity)."""

    axes: tuple[AxisTiles, ...]
    query_flat: torch.Tensor  # (tiles, queries per tile) flat grid index
    key_flat: torch.Tensor  # (tiles, keys per tile) flat grid index
    output_flat: torch.Tensor  # (N,) slot of each grid position in the flattened (tiles, queries per tile)
    visible: torch.Tensor  # (tiles, queries per tile, keys per tile) bool, from the mask function


def tile_plan(shape: Sequence[int], axes: Sequence[AxisTiles], mask_mod: MaskMod) -> TilePlan:
    """Flat indices of every tile's queries and keys, and the tile masks evaluated from ``mask_mod``."""
    query_flat = _flat_index([a.query_index for a in axes], shape)
    key_flat = _flat_index([a.key_index for a in axes], shape)
    zero = torch.zeros((), dtype=torch.long, device=query_flat.device)
    visible = mask_mod(zero, zero, query_flat[:, :, None], key_flat[:, None, :])
    return TilePlan(tuple(axes), query_flat, key_flat, _output_index(axes), visible)


def _refuse_vmap(info: object, in_dims: object, *args: object) -> None:
    """The ``vmap`` rule of the kernel's autograd Functions: none (their hand-written backward works on whole
    ``(B, H, ...)`` batches already)."""
    raise NotSupportedError(f"{IMPLEMENTATION} does not run under torch.func.vmap: fold the mapped dim into the "
                            "batch dim B instead, or use impl='reference'")


class _GatherTokens(torch.autograd.Function):
    """``x[:, :, index]`` on ``(B, H, N, D)``, with a backward that scatter-adds in token-major layout.

    ``index_add_`` along the token dim of ``(B, H, N, D)`` runs about 5x slower on CPU than along dim 0 of
    ``(N, B·H·D)`` (measured: 2.5 ms vs 0.5 ms for 17k rows of 4x32), so the gradient is transposed first;
    the forward gather showed no such difference inside the op and stays a plain ``index_select``.
    """

    vmap = staticmethod(_refuse_vmap)

    @staticmethod
    def forward(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(2, index)

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:  # noqa: ANN001
        x, index = inputs
        ctx.save_for_backward(index)
        ctx.shape = x.shape

    @staticmethod
    @first_order_only(IMPLEMENTATION)
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        (index,) = ctx.saved_tensors
        batch, heads, length, dim = ctx.shape
        rows = grad.permute(2, 0, 1, 3).reshape(index.numel(), -1)
        summed = rows.new_zeros(length, rows.shape[1]).index_add_(0, index, rows)
        return summed.view(length, batch, heads, dim).permute(1, 2, 0, 3), None


def gather_tiles(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """``(B, H, *grid, D)`` -> ``(B, H, tiles, n, D)`` with one gather on the flattened grid."""
    flat = x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])
    gathered = _GatherTokens.apply(flat, flat_index.reshape(-1))
    return gathered.view(x.shape[0], x.shape[1], *flat_index.shape, x.shape[-1])


def scatter_tiles(out: torch.Tensor, plan: TilePlan, grid: Sequence[int]) -> torch.Tensor:
    """Inverse of the query gather: ``(B, H, tiles, n, Dv)`` -> ``(B, H, *grid, Dv)``."""
    flat = out.reshape(out.shape[0], out.shape[1], -1, out.shape[-1]).index_select(2, plan.output_flat)
    return flat.view(out.shape[0], out.shape[1], *grid, out.shape[-1])


class _TileAttention(torch.autograd.Function):
    """Softmax attention on a batch of tiles with a hand-written backward that reuses the saved probabilities.

    Forward: ``S = (q · scale) kᵀ + logits`` (logits added in place), ``P = softmax(S)``, ``O = P v``.
    Backward (FlashAttention's identities): ``dV = Pᵀ dO``, ``dS = P ∘ (dO vᵀ - rowsum(dO ∘ O))``,
    ``dQ = dS k · scale``, ``dK = dSᵀ q · scale``, ``dlogits = dS`` summed to the logits' broadcast shape.
    Six batched GEMMs in all and a handful of in-place passes over the ``(tiles, n_q, n_k)`` scores.
    """

    vmap = staticmethod(_refuse_vmap)

    @staticmethod
    def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, logits: torch.Tensor,
                scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the output and, for :meth:`setup_context`, the probabilities and the flat output."""
        lead, n_q, n_k = q.shape[:-2], q.shape[-2], k.shape[-2]
        q3, k3, v3 = (t.reshape(-1, *t.shape[-2:]) for t in (q, k, v))
        scores = torch.bmm(q3 * scale, k3.transpose(1, 2)).to(logits.dtype)
        scores.view(*lead, n_q, n_k).add_(logits)
        probs = torch.softmax(scores, dim=-1)
        out = torch.bmm(probs.to(v3.dtype), v3)
        return out.view(*lead, n_q, v.shape[-1]), probs, out

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: tuple) -> None:  # noqa: ANN001
        q, k, v, logits, scale = inputs
        _, probs, out = output
        ctx.mark_non_differentiable(probs, out)
        ctx.save_for_backward(q, k, v, probs, out)  # the inputs themselves: under create_graph they link the graph
        ctx.scale, ctx.logits_shape, ctx.lead = scale, logits.shape, q.shape[:-2]

    @staticmethod
    @first_order_only(IMPLEMENTATION)
    def backward(ctx, grad_out: torch.Tensor, _grad_probs: None, _grad_flat: None):  # noqa: ANN001, ANN205
        q, k, v, probs, out = ctx.saved_tensors
        q3, k3, v3 = (t.reshape(-1, *t.shape[-2:]) for t in (q, k, v))
        grad3 = grad_out.reshape(out.shape)
        grad_v = torch.bmm(probs.transpose(1, 2).to(grad3.dtype), grad3)
        grad_scores = torch.bmm(grad3, v3.transpose(1, 2)).to(probs.dtype)
        grad_scores.sub_((grad3 * out).sum(-1, keepdim=True).to(probs.dtype)).mul_(probs)
        grad_logits = None
        if ctx.needs_input_grad[3]:
            full = grad_scores.view(*ctx.lead, *grad_scores.shape[-2:])
            grad_logits = full.sum_to_size(ctx.logits_shape)
        grad_scores = grad_scores.to(q3.dtype)
        grad_q = torch.bmm(grad_scores, k3).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q3).mul_(ctx.scale)
        shape = (*ctx.lead, -1, q3.shape[-1])
        return (grad_q.view(shape), grad_k.view(shape), grad_v.view(*ctx.lead, -1, v3.shape[-1]), grad_logits, None)


def attend_tiles(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, logits: torch.Tensor, *,
                 scale: float) -> torch.Tensor:
    """``softmax(q kᵀ · scale + logits) v`` per tile: q ``(B, H, T, n_q, D)``, k/v ``(B, H, T, n_k, D)``.

    ``logits`` (additive, ``-inf`` = masked) broadcast to ``(B, H, T, n_q, n_k)`` in the compute dtype
    (float32 for half-precision inputs, else the input dtype); see :func:`compute_dtype`. Differentiable
    in q, k, v and logits (first order). With a NaN or infinity in k or v the fused kernel would spread it
    over whole tiles (a masked ``-inf`` logit plus a NaN score is NaN, and ``0 · NaN`` enters ``P v``), so
    such calls take :func:`dense_attention` on the tiles instead, where it reaches only the queries that see it.
    """
    if has_non_finite(k, v):
        return _attend_tiles_exact(q, k, v, logits, scale=scale)
    return _TileAttention.apply(q, k, v, logits, scale)[0]


def _attend_tiles_exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, logits: torch.Tensor, *,
                        scale: float) -> torch.Tensor:
    """:func:`attend_tiles` by plain autograd through :func:`dense_attention` on the tiles, in the compute dtype:
    masked logits stay ``-inf`` whatever the scores, masked values never enter a product."""
    dtype = logits.dtype
    out = dense_attention(q.to(dtype), k.to(dtype), v.to(dtype), bias=logits, scale=scale)
    return out.to(v.dtype)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Softmax is computed in float32 for half-precision inputs, in the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def mask_logits(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive logits of a boolean mask: 0 where visible, ``-inf`` elsewhere."""
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(~visible, float("-inf"))


@functools.lru_cache(maxsize=64)
def _cached_plan_logits(plan: TilePlan, dtype: torch.dtype) -> torch.Tensor:
    return mask_logits(plan.visible, dtype)


def plan_logits(plan: TilePlan, dtype: torch.dtype) -> torch.Tensor:
    """The additive mask logits of a plan's tiles, ``(tiles, n_q, n_k)``: cached per plan in eager mode; under
    ``torch.compile`` (which traces through ``lru_cache`` wrappers, ignoring the cache) built in the graph."""
    if torch.compiler.is_compiling():
        return mask_logits(plan.visible, dtype)
    return _cached_plan_logits(plan, dtype)


def tiled_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan: TilePlan, *,
                    scale: float, bias: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                    ) -> torch.Tensor:
    """Local attention over a ``(B, H, *grid, D)`` input following ``plan``.

    ``bias(query_flat, key_flat)`` returns additive logits ``(H, tiles, n_q, n_k)`` (a relative position
    bias, say).
    """
    logits = plan_logits(plan, compute_dtype(query.dtype))
    if bias is not None:
        logits = logits + bias(plan.query_flat, plan.key_flat).to(logits.dtype)
    out = attend_tiles(gather_tiles(query, plan.query_flat), gather_tiles(key, plan.key_flat),
                       gather_tiles(value, plan.key_flat), logits, scale=scale)
    return scatter_tiles(out, plan, query.shape[2:-1])

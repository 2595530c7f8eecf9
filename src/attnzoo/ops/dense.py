"""Dense attention with an explicit mask and additive bias: the readable oracle every fast path is tested against."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from attnzoo.masks import Pattern, dense_mask
from attnzoo.positional import relative_position_index
from attnzoo.registry import NotSupportedError


@torch.compiler.assume_constant_result
def physical_memory_bytes() -> int:
    """The machine's total physical memory (``SC_PAGE_SIZE · SC_PHYS_PAGES``); a constant of the process, which
    ``torch.compile`` evaluates once at trace time (``os.sysconf`` cannot be traced)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_dense_size(what: str, shape: Sequence[int], dtype: torch.dtype, fast_path: str) -> None:
    """Refuse up front a dense ``shape`` tensor (a score matrix, an N x N operator) larger than the machine's
    physical memory, instead of letting the allocator fail (or the machine swap) part-way through.

    ``what`` names the tensor, ``fast_path`` the implementation to suggest. Raises
    :class:`attnzoo.NotSupportedError` naming the shape, the bytes needed and the limit.
    """
    needed = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    limit = physical_memory_bytes()
    if needed > limit:
        raise NotSupportedError(f"{what} of shape {tuple(shape)} ({dtype}) needs {needed:,} bytes, more than this "
                                f"machine's {limit:,} bytes of memory; the dense reference cannot run this call: "
                                f"use a fast path ({fast_path}), which never forms it")


def has_non_finite(*tensors: torch.Tensor) -> bool:
    """Whether any of ``tensors`` holds a NaN or an infinity (one fused ``isfinite().all()`` each).

    Under ``torch.func.vmap`` and while ``torch.compile`` traces (``torch.compiler.is_compiling()``) a
    data-dependent branch cannot be taken (vmap has no values to test; under compile the test would break the
    graph), so this answers ``False`` there: the plain route runs, on which a non-finite key or value also reaches
    the queries that do not see it (a whole tile of the tiled kernel, every query of a dense product). Finite
    inputs give the same result on both routes; eager calls keep the exact route.
    """
    if torch.compiler.is_compiling():
        return False
    if any(torch._C._functorch.is_batchedtensor(t) for t in tensors):  # noqa: SLF001 (no public test exists)
        return False
    return not all(bool(torch.isfinite(t).all()) for t in tensors)


def attend_values(probs: torch.Tensor, value: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``probs @ value`` in which each query sums over its ``visible`` keys only (``visible`` broadcasts to
    ``probs``'s shape): a NaN or infinite value reaches exactly the queries that see it.

    The plain product is used when ``value`` is finite. Otherwise masked keys would still enter the GEMM as
    ``0 · NaN = NaN``, so the keys holding a non-finite value in any batch entry (usually few) are taken out of
    the GEMM and added back with ``torch.where`` on the mask: O(Nq · bad keys · Dv) more work. The mask is
    applied to the values before the product, so gradients through hidden pairs are 0, not ``0 · NaN``.
    """
    if not has_non_finite(value):
        return torch.matmul(probs, value)
    bad = ~torch.isfinite(value).all(-1)
    columns = bad.reshape(-1, bad.shape[-1]).any(0).nonzero().squeeze(1)
    out = torch.matmul(probs, value.index_fill(-2, columns, 0))
    seen = visible.expand(probs.shape).index_select(-1, columns)[..., None]
    values = torch.where(seen, value.index_select(-2, columns)[..., None, :, :], 0)  # (..., Nq, bad keys, Dv)
    return out + (probs.index_select(-1, columns)[..., None] * values).sum(-2)


def dense_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                    mask: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                    scale: float | None = None) -> torch.Tensor:
    """``softmax(q kᵀ · scale + bias, masked) v`` computed in full.

    Shapes: query/key ``(..., Nq, D)``/``(..., Nk, D)``, value ``(..., Nk, Dv)``; ``mask`` (True = visible)
    and ``bias`` broadcast to ``(..., Nq, Nk)``; a ``-inf`` bias also hides a key. Time and memory
    O(Nq · Nk); a score matrix larger than the machine's memory is refused up front
    (:func:`check_dense_size`). A query with no visible key yields NaN, which no registered pattern allows.
    NaN follows the math: a non-finite key or value makes non-finite only the queries that see it, a
    non-finite query only its own row (:func:`attend_values`).
    """
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    check_dense_size("the dense score matrix", (*lead, query.shape[-2], key.shape[-2]), query.dtype,
                     "impl='auto' or a named one")
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if bias is not None:  # a -inf bias hides the key even where its score is NaN
        scores = (scores + bias).masked_fill(bias == float("-inf"), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return attend_values(probs, value, scores != float("-inf"))


def pattern_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: Pattern,
                      scale: float, table: torch.Tensor | None = None, radius: Sequence[int] = (),
                      dilation: Sequence[int] | None = None) -> torch.Tensor:
    """The reference of every grid pattern: :func:`dense_attention` through the pattern's explicit mask.

    ``(B, H, *grid, D)`` -> ``(B, H, *grid, Dv)``. The mask is ``(N, N)``, or ``(H, N, N)`` when the pattern
    has ``mask_heads``; ``table`` is an optional relative position bias ``(H, 2r_1 + 1, ...)`` read through
    :func:`attnzoo.positional.relative_position_index` with ``radius`` and ``dilation``. O(N^2) time and memory;
    refused up front (before the mask is built) when the score matrix would not fit in the machine's memory.
    """
    n = pattern.num_tokens
    batch, heads = query.shape[:2]
    check_dense_size("the dense score matrix", (batch, heads, n, n), query.dtype, "impl='auto' or a named one")
    mask = dense_mask(pattern.mask_mod(), n, n, device=query.device, heads=getattr(pattern, "mask_heads", None))
    bias = None
    if table is not None:
        idx = torch.arange(n, device=query.device)
        bias = table.flatten(1)[:, relative_position_index(idx[:, None], idx[None, :], pattern.shape, radius, dilation)]
    out = dense_attention(*(t.reshape(batch, heads, n, t.shape[-1]) for t in (query, key, value)),
                          mask=mask, bias=bias, scale=scale)
    return out.reshape(*query.shape[:-1], value.shape[-1])

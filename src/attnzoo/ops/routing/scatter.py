"""Gathering the tokens of each cluster and scattering the per-cluster results back by their mean.

Tokens are addressed as rows of the ``(B · H · N, D)`` view of a ``(B, H, N, D)`` tensor. A gather is one
``index_select`` of rows, a scatter one ``index_add_`` of rows into zeros (:class:`GatherRows`,
:class:`ScatterRows`: each the other's backward, so they differentiate to any order; autograd's own backward of
``index_select`` adds a second zero-filled copy). ``index_add_`` measured 2x faster than ``scatter_add_`` with an
expanded index on CPU (1 thread; 1.4x at 2 threads). O(B · H · K · window · D) each.

A token in several clusters gets the mean of its results there (the official ``scatter_cluster_items`` divides by
the count plus ``1e-2``, lucidrains' ``scatter_mean`` by the count plus ``1e-5``; here by the exact count), a token
in none gets zeros.
"""

from __future__ import annotations

import torch


class GatherRows(torch.autograd.Function):
    """``x[rows]`` of a 2-D ``x`` and 1-D ``rows``; backward :class:`ScatterRows`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.num_rows = x.shape[0]
        return x.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        return ScatterRows.apply(grad, rows, ctx.num_rows), None


class ScatterRows(torch.autograd.Function):
    """The ``(num_rows, D)`` sums of the rows of ``src`` by their index ``rows``; backward :class:`GatherRows`."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, rows: torch.Tensor, num_rows: int) -> torch.Tensor:
        ctx.save_for_backward(rows)
        return src.new_zeros(num_rows, src.shape[-1]).index_add_(0, rows, src)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (rows,) = ctx.saved_tensors
        return GatherRows.apply(grad, rows), None, None


def member_rows(members: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, H, K, W)`` positions -> the same shape of row indices into the ``(B · H · n, D)`` view."""
    b, h = members.shape[:2]
    return members + (torch.arange(b * h, device=members.device) * n).view(b, h, 1, 1)


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, D)`` and row indices of any shape ``S`` -> ``(*S, D)``."""
    return GatherRows.apply(x.reshape(-1, x.shape[-1]), rows.reshape(-1)).view(*rows.shape, x.shape[-1])


def scatter_mean(per_member: torch.Tensor, rows: torch.Tensor, valid: torch.Tensor | None,
                 shape: tuple[int, int, int]) -> torch.Tensor:
    """Results ``(..., Dv)`` of the members at ``rows`` (the same leading shape) -> ``(B, H, N, Dv)`` for
    ``shape = (B, H, N)``: each token's mean over the members that hold it and are ``valid`` (``None``: all;
    invalid members must hold zeros), zero where none."""
    b, h, n = shape
    dv = per_member.shape[-1]
    flat = rows.reshape(-1)
    total = ScatterRows.apply(per_member.reshape(-1, dv), flat, b * h * n)
    weights = torch.ones_like(flat, dtype=per_member.dtype) if valid is None else valid.reshape(-1).to(per_member.dtype)
    count = per_member.new_zeros(b * h * n).scatter_add_(0, flat, weights)
    return (total / count.clamp(min=1)[:, None]).view(b, h, n, dv)

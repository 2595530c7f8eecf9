"""DCAL's query selection (arXiv 2205.02151, Sec. 3.2): the ``R`` tokens with the highest accumulated attention
of the class token (row 0 of the rollout ``Ŝ``) give the local queries ``Q^l`` of global-local cross-attention."""

from __future__ import annotations

import torch

from attnzoo.validation import check_flag, check_int


def check_top_r(top_r: int, tokens: int, keep_cls: bool) -> None:
    """``top_r`` is an int in ``[1, N]`` (``[1, N - 1]`` patches with ``keep_cls``)."""
    check_int("top_r", top_r)
    check_flag("keep_cls", keep_cls)
    most = tokens - 1 if keep_cls else tokens
    if top_r > most:
        what = f"the N - 1 = {most} patch tokens (keep_cls=True keeps token 0 apart)" if keep_cls else \
            f"the N = {tokens} tokens"
        raise ValueError(f"top_r={top_r}: expected 1 <= top_r <= {most}, at most {what}")


def select_top_queries(rollout: torch.Tensor, top_r: int, keep_cls: bool = False) -> torch.Tensor:
    """``(B, R')`` int64 indices of the selected queries from a ``(B, N, N)`` ``rollout``
    (:func:`attnzoo.ops.dcal.attention_rollout`), highest class-token response first, ties broken by the lower
    index (a stable sort, unlike :func:`torch.topk`, whose order among equal values is unspecified).

    ``keep_cls=False`` (the paper's words): the ``R = top_r`` highest entries of ``rollout[:, 0, :]`` over all
    ``N`` tokens, ``R' = R``. ``keep_cls=True`` (what DCAL reimplementations do, so that the branch has a class
    token to classify): token 0 first, then the ``R`` highest patches ``1..N-1``, ``R' = R + 1``. NaN ranks
    above every number (the sort's order). Not differentiable (indices). Time O(B · N log N).
    """
    if not isinstance(rollout, torch.Tensor):
        raise TypeError(f"rollout must be a torch.Tensor, got {type(rollout).__name__}")
    if rollout.dim() != 3 or rollout.shape[1] != rollout.shape[2]:
        raise ValueError(f"rollout has shape {tuple(rollout.shape)}; expected (B, N, N), e.g. attention_rollout's")
    check_top_r(top_r, rollout.shape[-1], keep_cls)
    scores = rollout.detach()[:, 0, 1:] if keep_cls else rollout.detach()[:, 0, :]
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :top_r]
    if not keep_cls:
        return order
    return torch.cat([order.new_zeros(order.shape[0], 1), order + 1], dim=1)


def gather_queries(query: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``(B, H, R, D)``: the rows ``indices`` ``(B, R)`` of a ``(B, H, N, D)`` query (differentiable)."""
    b, h, _, d = query.shape
    return query.gather(2, indices[:, None, :, None].expand(b, h, indices.shape[1], d))

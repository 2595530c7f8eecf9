"""Routing attention by gathered clusters (``impl="gathered"``), the fast path: never an ``N x N`` matrix.

The ``window`` members of every cluster are gathered into ``(B, H · K, window, D)`` blocks (queries by the queries'
members, keys and values by the keys'; stored slot-major, as SDPA's CPU kernel lays out its outputs and gradients,
:func:`slot_major`), attention runs inside every block through one SDPA call
(:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`, the CPU flash kernel), and the block outputs are scattered back by
their mean (:mod:`.scatter`). The causal mask is on the original positions (:func:`.masks.visible_keys`):

- shared queries and keys: each block's members are sorted by position, so slot order is position order and one
  additive ``window x window`` mask of the slots serves every block (causal, the own slot hidden unless it is the
  only one visible), SDPA called directly (:func:`shared_block_sdpa`: no data-dependent mask test, so
  ``torch.compile`` traces it whole); the keys' blocks are the queries' when ``key is query``;
- keys routed on their own: a ``(B, H · K, window, window)`` boolean mask of the members' positions (when causal;
  none otherwise), a query that sees no key of its block contributing nothing to its mean.

FLOPs ``4 · B · H · K · window² · D`` of attention (the mask hides half when causal, SDPA still computes it: a
shifted ``is_causal`` call skipping it measured slower on CPU for its slice copies; so did an explicit
``baddbmm`` / softmax / ``bmm``) plus
O(B · H · K · window · D) of gathers and scatter; memory O(B · H · K · window · D). Backward: SDPA's, first order
(its CPU flash kernel has none of second order: differentiating twice raises :class:`attnzoo.NotSupportedError`),
through the gathers and the scatter.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.routing.masks import visible_keys
from attnzoo.ops.routing.routing import Routing
from attnzoo.ops.routing.scatter import gather_rows, member_rows, scatter_mean
from attnzoo.ops.softmax.sdpa import first_order_sdpa, softmax_sdpa


def slot_mask(window: int, is_causal: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The additive ``(window, window)`` mask of a block of shared, position-sorted members: 0 where slot ``s``
    sees slot ``t``, ``-inf`` elsewhere."""
    slots = torch.arange(window, device=device)
    visible = visible_keys(slots[:, None], slots[None, :], None, is_causal=is_causal, shared=True)
    return torch.zeros(window, window, dtype=dtype, device=device).masked_fill(~visible, float("-inf"))


def shared_block_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float
                      ) -> torch.Tensor:
    """SDPA of every block under the one slot mask, in which every slot sees at least itself: no row to zero,
    so no data-dependent test (``softmax_sdpa`` checks its masks for hidden rows, which ``torch.compile`` cannot
    trace); with gradients through softmax.sdpa's first-order-only wrapper, as ``softmax_sdpa`` does."""
    return first_order_sdpa(q, k, v, mask, {"dropout_p": 0.0, "is_causal": False, "scale": scale, "enable_gqa": False})


def slot_major(rows: torch.Tensor, blocks: tuple[int, int, int]) -> torch.Tensor:
    """``(B, H, K, W)`` row indices in slot-major order ``(B, W, H · K)``: the order in which SDPA's CPU flash
    kernel lays out its ``(B, H · K, W, D)`` outputs and input gradients (``(B, N, H, D)`` storage), so that the
    blocks gathered and scattered in this order are viewed, never copied, on their way in and out of SDPA."""
    return rows.reshape(blocks).transpose(1, 2)


def routing_gathered(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, routing: Routing, *,
                     is_causal: bool, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` query and key, ``(B, H, N, Dv)`` value -> ``(B, H, N, Dv)`` (see the module)."""
    b, h, n, _ = query.shape
    clusters, window = routing.query_members.shape[2:]
    blocks = (b, h * clusters, window)
    q_rows = slot_major(member_rows(routing.query_members, n), blocks)
    k_rows = slot_major(member_rows(routing.key_members, n), blocks)
    q = gather_rows(query, q_rows).transpose(1, 2)  # (B, H·K, W, D) over (B, W, H·K, D) storage
    k = q if routing.shared and key is query else gather_rows(key, k_rows).transpose(1, 2)
    v = gather_rows(value, k_rows).transpose(1, 2)
    valid = None
    if routing.shared:
        out = shared_block_sdpa(q, k, v, slot_mask(window, is_causal, q.dtype, q.device), scale)
    elif is_causal:
        mask = visible_keys(routing.query_members.view(*blocks, 1),
                            routing.key_members.view(b, h * clusters, 1, window), None, is_causal=True, shared=False)
        out = softmax_sdpa(q, k, v, is_causal=False, scale=scale, dropin=DropIn(attn_mask=mask))
        valid = mask.any(-1).transpose(1, 2)
    else:  # every key of the block is visible
        out = softmax_sdpa(q, k, v, is_causal=False, scale=scale)
    return scatter_mean(out.transpose(1, 2), q_rows, valid, (b, h, n))

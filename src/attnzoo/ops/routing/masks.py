"""Who a routed query sees inside its cluster, written once for the reference and the fast path's non-shared case.

In cluster ``c`` the query at position ``i`` (a member of ``c``) sees the keys gathered by ``c`` at positions
``j <= i`` (causal, on the original positions) or all of them; with shared queries and keys it does not see its
own position unless nothing else is visible, the earliest member of a causal cluster (lucidrains and Reformer set
that logit to ``-5e4``, which is this rule exactly for logits of magnitude below about ``4e4``). A (query, cluster)
pair that sees no key (causal, keys routed on their own) contributes nothing to the query's mean.
"""

from __future__ import annotations

import torch


def visible_keys(query_positions: torch.Tensor, key_positions: torch.Tensor, key_member: torch.Tensor | None,
                 *, is_causal: bool, shared: bool) -> torch.Tensor:
    """Boolean visibility of keys for routed queries.

    ``query_positions`` ``(..., W, 1)`` and ``key_positions`` ``(..., 1, M)`` are positions in the sequence;
    ``key_member`` (broadcasting to ``(..., W, M)``, or ``None``: every key counted) says which of the ``M`` keys
    the query's cluster gathered. Returns ``(..., W, M)``, ``True`` where the query sees the key."""
    visible = torch.ones(torch.broadcast_shapes(query_positions.shape, key_positions.shape), dtype=torch.bool,
                         device=query_positions.device)
    if key_member is not None:
        visible = visible & key_member
    if is_causal:
        visible = visible & (key_positions <= query_positions)
    if not shared:
        return visible
    itself = key_positions == query_positions
    others = visible & ~itself
    alone = ~others.any(-1, keepdim=True)
    return others | (visible & itself & alone)

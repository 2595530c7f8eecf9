"""The routing of routing attention (Roy et al., "Efficient Content-Based Sparse Attention with Routing
Transformers", arXiv 2003.05997, Section 4.1): which tokens each cluster gathers, computed once per call and shared
by every implementation, so that the dense reference and the fast path attend over exactly the same sets.

Queries and keys are put on the unit sphere (``x̂ = x / ‖x‖``) and compared with ``K`` centroids ``μ_c`` per head
(``(H, K, D)``, shared by queries and keys): the scores ``x̂_i · μ_c`` give

- the balanced members of each cluster (:func:`balanced_members`): the ``window`` tokens of highest score for that
  cluster, as the official code's ``gather_cluster_attention_items`` (``tf.math.top_k`` over the sequence, then
  ``tf.sort`` of the positions) and lucidrains' ``distribution`` (``topk`` over the sequence). A token may be in
  0, 1 or several clusters. Ties are broken by position, explicitly: among equal scores the earlier token wins
  (``torch.topk`` leaves that order unspecified, so rows where a tie straddles the ``window``-th place are
  re-selected with a stable sort);
- the nearest centroid of every token (:func:`nearest_centroids`, ``argmax_c x̂ · μ_c``, the first on a tie),
  which the commitment loss and the centroids' k-means update read (official ``nearest_neighbor``; lucidrains
  ``dists_and_buckets``).

With ``shared_qk`` (keys are the queries, the paper's decoder setting) the keys take the queries' members, so each
cluster is one set of tokens attending among themselves. Routing is discrete: the selection runs under
``torch.no_grad``, so no gradient reaches the centroids or flows through the assignments (only the normalised
vectors keep theirs, for the commitment loss). Low precision inputs (float16, bfloat16) are routed in float32, so
that rounding does not reorder close scores.
Cost: the ``(B, H, K, N)`` scores, O(B · H · K · N · D), and a top-``window`` per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Routing:
    """The routing of one call. ``query_members`` / ``key_members``: ``(B, H, K, window)`` int64 positions of the
    tokens each cluster gathers, ascending (the same tensor with ``shared``); ``query_unit`` / ``key_unit``: the
    normalised vectors (float32 at least; differentiable, for the commitment loss); ``query_scores`` /
    ``key_scores``: their ``(B, H, K, N)`` scores, detached."""

    query_members: torch.Tensor
    key_members: torch.Tensor
    query_unit: torch.Tensor
    key_unit: torch.Tensor
    query_scores: torch.Tensor
    key_scores: torch.Tensor
    shared: bool

    def nearest(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(B, H, N)`` nearest centroid of every query and of every key (:func:`nearest_centroids`)."""
        query = nearest_centroids(self.query_scores)
        return query, query if self.shared else nearest_centroids(self.key_scores)


def routing_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype routing runs in: float32 for float16 / bfloat16 inputs, else the input's."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def unit(x: torch.Tensor) -> torch.Tensor:
    """``x / max(‖x‖, 1e-12)`` over the last dim, in :func:`routing_dtype` (differentiable)."""
    return F.normalize(x.to(routing_dtype(x.dtype)), dim=-1)


def cluster_scores(x_unit: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, D)`` unit vectors and ``(H, K, D)`` centroids -> ``(B, H, K, N)`` scores ``μ_c · x̂_i``."""
    return torch.matmul(centroids.to(x_unit.dtype), x_unit.transpose(-1, -2))


def nearest_centroids(scores: torch.Tensor) -> torch.Tensor:
    """``(B, H, K, N)`` scores -> ``(B, H, N)`` the cluster of highest score per token, the first on a tie
    (``torch.max``'s indices; ``argmax`` is the same, 1.6x slower on CPU)."""
    return scores.max(dim=-2).indices


def _stable_top(scores: torch.Tensor, window: int) -> torch.Tensor:
    """The first ``window`` positions of each row in descending score order, equal scores in position order
    (``torch.sort(stable=True)``)."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :window]


def balanced_members(scores: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, K, N)`` scores -> ``(B, H, K, window)`` ascending positions of the ``window`` highest-scoring tokens
    of each cluster, an equal score going to the earlier position.

    ``torch.topk`` picks the set; it is already the answer unless the ``window``-th score also occurs outside it
    (the ``window + 1``-th highest equals it), and only those rows are re-selected by a stable sort (O(N log N) per
    row, usually none). While ``torch.compile`` traces, every row takes the stable sort (no data-dependent branch
    in the graph): the same selection, slower."""
    n = scores.shape[-1]
    if torch.compiler.is_compiling():
        return _stable_top(scores, window).sort(dim=-1).values
    if window == n:
        return torch.arange(n, device=scores.device).expand(scores.shape).contiguous()
    top = scores.topk(window + 1, dim=-1)  # the (window + 1)-th equal to the window-th: a tie at the boundary
    members = top.indices[..., :window]
    tied = top.values[..., window - 1] == top.values[..., window]
    if bool(tied.any()):
        rows = tied.reshape(-1).nonzero().squeeze(1)
        members = members.reshape(-1, window).index_copy(0, rows, _stable_top(scores.reshape(-1, n)[rows], window))
        members = members.view(*scores.shape[:-1], window)
    return members.sort(dim=-1).values


def route(query: torch.Tensor, key: torch.Tensor, centroids: torch.Tensor, window: int, shared: bool) -> Routing:
    """The :class:`Routing` of ``(B, H, N, D)`` queries and keys by ``(H, K, D)`` centroids (see the module);
    with ``shared`` the keys are not routed (they take the queries' members and nearest centroids). Only the
    normalisation is recorded by autograd (for the commitment loss); the selection runs without gradients."""
    q_unit = unit(query)
    k_unit = q_unit if shared else unit(key)
    with torch.no_grad():
        q_scores = cluster_scores(q_unit, centroids)
        q_members = balanced_members(q_scores, window)
        if shared:
            return Routing(q_members, q_members, q_unit, q_unit, q_scores, q_scores, True)
        k_scores = cluster_scores(k_unit, centroids)
        return Routing(q_members, balanced_members(k_scores, window), q_unit, k_unit, q_scores, k_scores, False)


def commitment_loss(centroids: torch.Tensor, routing: Routing) -> torch.Tensor:
    """The commitment term ``mean ‖x̂ − sg(μ_{a(x)})‖²`` of the routing's unit queries, plus that of the keys when
    they are routed on their own (official ``embedding_lookup``'s ``e_loss``, summed over queries and keys as
    ``q_clustering_loss + k_clustering_loss``), ``a(x)`` the nearest centroid; a scalar in the routing dtype
    whose gradient reaches the queries and keys only (the centroids are constants here). The layer multiplies it
    by its ``commitment`` (the paper's β = 1e-4)."""
    def term(x_unit: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
        heads = torch.arange(x_unit.shape[1], device=x_unit.device)[None, :, None]
        assigned = centroids.detach().to(x_unit.dtype)[heads, nearest]  # (B, H, N, D)
        return (x_unit - assigned).square().mean()

    query_nearest, key_nearest = routing.nearest()
    loss = term(routing.query_unit, query_nearest)
    return loss if routing.shared else loss + term(routing.key_unit, key_nearest)

"""Routing attention (Roy, Saffar, Vaswani, Grangier, "Efficient Content-Based Sparse Attention with Routing
Transformers", TACL 2021, arXiv 2003.05997, Section 4.1): content-based sparse attention whose sparsity pattern
is an online spherical k-means clustering of the queries and keys.

For ``(B, H, N, D)`` queries ``Q``, keys ``K``, values ``V`` and ``K_c`` centroids ``μ`` per head ``(H, K_c, D)``
(shared by queries and keys; the layer keeps and updates them)::

    Q̂ = Q / ‖Q‖,  K̂ = K / ‖K‖                                          (routing on the unit sphere)
    C_c^Q = top-w_i (Q̂_i · μ_c),  C_c^K = top-w_j (K̂_j · μ_c)            (balanced: w members per cluster)
    X_i^c = Σ_{j ∈ C_c^K, j ≤ i} softmax_j(Q_i · K_j · scale) V_j        for i ∈ C_c^Q (causal on positions)
    X_i = mean_{c : i ∈ C_c^Q} X_i^c   (0 if i is in no cluster)          (scatter_mean)

With ``shared_qk=True`` (the paper's decoders: keys are the queries) the keys take the queries' members
(``C_c^K = C_c^Q``) and a query does not attend to its own position unless it sees nothing else (the earliest
member of a causal cluster attends only to itself), as lucidrains' ``KmeansAttention`` (``-5e4`` on the self
logit). The routing (:mod:`.routing`) is discrete and carries no gradient: gradients flow through the attention,
never through the assignments, and never reach ``centroids``. ``return_loss=True`` also returns the commitment
term ``mean ‖x̂ − sg(μ_{a(x)})‖²`` of the queries (plus the keys when routed separately), ``a(x)`` the nearest
centroid, whose gradient reaches ``query`` and ``key``; :class:`attnzoo.layers.RoutingAttention` scales it by
β = 1e-4 and updates the centroids by their EMA k-means step.

Implementations, in ``auto``'s order: ``gathered`` (:mod:`.gathered`: the members gathered into ``(B, H·K, w, D)``
blocks, SDPA inside each, scattered back; O(N · w · D) per head for ``K · w = N``, never an ``N x N`` matrix;
first-order backward) and ``reference`` (:mod:`.reference`: every routed query scored against all ``N`` keys with
the explicit cluster mask; the oracle). Both read one :class:`~.routing.Routing`, so they attend over the same
sets; ties in the selection go to the earlier position.

Verified (``tests/test_routing.py``): the two implementations against each other forward and backward in float64
and float32 on the contract's cases (lengths 1, 63, 500; head dims 8, 60; exact ties); one cluster with
``window = N`` against dense causal attention (the self position masked when shared, equal to the ``-5e4`` self
logit); multi-membership means against the equations written out as loops; no gradient through the routing;
lucidrains' ``routing-transformer`` 1.6.1 ``KmeansAttention`` with copied centroids: equal outputs, commitment
losses and k-means updates for shared causal and separate bidirectional routing (its ``scatter_mean`` adds
``1e-5`` to the count), different for separate causal routing, where it adds a learned memory key per cluster.
The official TensorFlow code (google-research ``routing_transformer/utils.py``: ``clustered_local_attention_helper``,
``gather_cluster_attention_items``, ``scatter_cluster_items``, ``online_kmeans``) was read and its separately
routed bidirectional path transcribed (equal up to its scatter's ``count + 1e-2``); its causal heads mask by the
slot order, which differs from the positions when queries and keys are routed apart, and with shared queries and
keys it does not mask the self position.

Note that balanced routing is not causal in value: whether token ``i`` is among a cluster's top ``w`` depends on the
scores of later tokens too (as in the official code's training forward). No gradient reaches a later token, but
changing later tokens can change earlier outputs through the selection (``tests/test_routing.py`` shows both).
"""

from __future__ import annotations

import torch

from attnzoo.ops.routing.routing import Routing, commitment_loss, route
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_qkv, check_scale, check_tensor_like, empty_output

VARIANT_NAME = "routing_attention"
LAYOUT = "(B, H, N, D)"


def check_centroids(centroids: torch.Tensor, query: torch.Tensor) -> int:
    """``centroids`` ``(H, K, D)`` for a ``(B, H, N, D)`` query, ``K >= 1``, the query's dtype and device;
    returns ``K``."""
    h, d = query.shape[1], query.shape[-1]
    if not isinstance(centroids, torch.Tensor) or centroids.dim() != 3 or centroids.shape[1] == 0:
        raise ValueError(f"centroids has shape {tuple(getattr(centroids, 'shape', ()))}; expected (H, K, D) = "
                         f"({h}, K >= 1, {d}), one set of K centroids per head of the query {tuple(query.shape)}")
    check_tensor_like("centroids", centroids, (h, centroids.shape[1], d), query)
    return centroids.shape[1]


def check_routing_window(window: int, length: int) -> int:
    """``1 <= window <= N``: each cluster gathers its ``window`` highest-scoring tokens of the ``N``."""
    check_int("window", window)
    if window > length:
        raise ValueError(f"window={window}: expected at most the sequence length N={length} (each cluster gathers "
                         f"its window highest-scoring tokens of the N)")
    return window


def routed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, centroids: torch.Tensor,
                     window: int, is_causal: bool = False, scale: float | None = None, impl: str = "auto", *,
                     shared_qk: bool = False) -> tuple[torch.Tensor, Routing | None]:
    """:func:`routing_attention`'s output and the :class:`~.routing.Routing` it used (``None`` for an empty batch
    or no heads), for callers that also need the assignments (the layer's centroid update)."""
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_centroids(centroids, query)
    check_flag("is_causal", is_causal)
    check_flag("shared_qk", shared_qk)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    window = check_routing_window(window, query.shape[2])
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value], causal=is_causal,
                                                                            length=query.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value) + centroids.sum() * 0, None
    routing = route(query, key, centroids, window, shared_qk)
    return implementation.fn(query, key, value, routing, is_causal=is_causal, scale=scale), routing


def routing_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, centroids: torch.Tensor,
                      window: int, is_causal: bool = False, scale: float | None = None, impl: str = "auto", *,
                      shared_qk: bool = False, return_loss: bool = False
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Routing attention (see the module): ``(B, H, N, D)`` query and key, ``(B, H, N, Dv)`` value and
    ``(H, K, D)`` centroids -> ``(B, H, N, Dv)``; with ``return_loss``, ``(out, commitment)``.

    ``window`` (``1 <= window <= N``): the members each cluster gathers. ``is_causal``: a query sees only keys at
    earlier or equal positions of its cluster. ``scale`` defaults to ``D ** -0.5`` (the logits are
    ``q · k · scale`` of the inputs as given; the routing normalises its own copy). ``shared_qk``: the keys are
    the queries (pass ``key = query``): the keys take the queries' routing and the self position is masked.
    ``impl``: ``"auto"``, ``"gathered"`` or ``"reference"``. Time O(B · H · N · K · D) for the routing plus
    O(B · H · K · window² · D) for the attention; the fast path never forms an ``N x N`` matrix.

    >>> import torch
    >>> q, v = torch.randn(2, 4, 64, 16), torch.randn(2, 4, 64, 16)
    >>> centroids = torch.nn.functional.normalize(torch.randn(4, 8, 16), dim=-1)   # 8 clusters per head
    >>> out, loss = routing_attention(q, q, v, centroids, window=8, is_causal=True, shared_qk=True,
    ...                               return_loss=True)
    >>> out.shape, loss.shape
    (torch.Size([2, 4, 64, 16]), torch.Size([]))
    """
    check_flag("return_loss", return_loss)
    out, routing = routed_attention(query, key, value, centroids, window, is_causal, scale, impl,
                                    shared_qk=shared_qk)
    if not return_loss:
        return out
    loss = query.new_zeros(()) if routing is None else commitment_loss(centroids, routing)
    return out, loss.to(query.dtype)

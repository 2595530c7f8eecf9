"""lucidrains' routing-transformer (``pip install --no-deps routing-transformer==1.6.1 product-key-memory==0.1.10
mixture-of-experts==0.2.1``; the last two only because its module imports them) as a routing-attention peer.

``KmeansAttention(num_clusters, window_size, heads, head_dim, causal=True, shared_qk=True)`` in eval mode (no k-means
update, as our op, which leaves that to the layer), its centroids copied from the workload's (and marked initialised,
so its 10 k-means iterations on the first batch do not run): it routes the queries to the top ``window_size`` per
cluster, attends inside each cluster with the raw queries against the L2-normalised keys (``-5e4`` on the self
logit, the causal mask on positions), and averages back with ``count + 1e-5``. That is our op given
``key = normalize(query)`` up to that ``1e-5`` (``tests/test_routing.py`` checks it), the error column's reference
(routed in float32 as the peer is: its ``einsum`` scores and our ``matmul`` ones can still differ in the last bit
and, rarely, put a token near a cluster's ``w``-th place on the other side).
It also computes its commitment loss every forward (returned beside the output; ours only with ``return_loss``).
Layout ``(B, H, N, D)``. Forward and backward (autograd).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from attnzoo.bench.case import Case, Inputs, Workload

INSTALL = "pip install --no-deps routing-transformer==1.6.1 product-key-memory==0.1.10 mixture-of-experts==0.2.1"
IMPL = "routing-transformer"
MODULE = "routing_transformer.routing_transformer"


def routing_transformer_unavailable() -> str | None:
    """``None`` when routing-transformer's ``KmeansAttention`` imports, else why not and how to install it."""
    try:
        importlib.import_module(MODULE)
    except ImportError as error:
        return f"routing-transformer is not installed ({error}); install with `{INSTALL}`"
    return None


def routing_transformer_case(workload: Workload, clusters: int, window: int,
                             reference: Callable[[Inputs], torch.Tensor] | None) -> Case:
    """``KmeansAttention`` with ``clusters`` centroids of ``window`` members on the workload's ``query`` (keys
    shared), ``value`` and ``centroids`` ``(H, K, D)``; ``reference`` computes the same function for the error
    column."""
    shape = workload.shape

    def prepare() -> torch.nn.Module:
        module = importlib.import_module(MODULE)
        attention = module.KmeansAttention(clusters, window, shape["heads"], shape["head_dim"], causal=True,
                                           shared_qk=True).eval()
        attention.kmeans.initted.fill_(True)
        return attention.to(workload.device)

    def forward(inputs: Inputs, attention: Any) -> torch.Tensor:
        with torch.no_grad():
            attention.kmeans.means.copy_(inputs["centroids"])
        q = inputs["query"]
        out, _ = attention(q, q, inputs["value"])
        return out

    return Case(workload, IMPL, forward, prepare=prepare, reference=reference, skip=routing_transformer_unavailable(),
                note="KmeansAttention, shared QK, causal, eval mode (no k-means update; it still computes its "
                     "commitment loss); error against ours with key = normalize(query) (its scatter adds 1e-5)")

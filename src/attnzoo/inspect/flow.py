"""Attention flow (Abnar & Zuidema 2020, arXiv 2005.00928, Sec. 3): the attention graph's maximum flow.

The graph has a node per token and layer (``L + 1`` layers of ``N`` nodes, layer 0 the inputs); the edge from
token ``a`` of layer ``l`` to token ``b`` of layer ``l - 1`` has capacity ``Ā_l[a, b]``, the head-averaged
attention with the residual added and rows renormalised, ``Ā = (mean_h A + I) / rowsum`` (the same ``Ā`` as
:func:`attnzoo.ops.dcal.attention_rollout`). The flow of output token ``i`` to input token ``j`` is the maximum
flow from node ``(L, i)`` to node ``(0, j)``; each row is then normalised to sum 1 over ``j``, as the official
``compute_flows`` (samiraabnar/attention_flow ``attention_graph_util.py``, networkx ``maximum_flow_value`` with
Edmonds-Karp on ``get_adjmat``'s graph).

Properties (tested in ``tests/test_inspect.py``): before the normalisation, ``rollout_ij <= flow_ij <= 1`` — the
rollout is the flow that splits every node's inflow along its edges in proportion to their capacities, and the
part of it that reaches ``j`` is a feasible ``i -> j`` flow, so the maximum is at least as large; every node's
outgoing capacity is 1. With one layer, flow and rollout are equal (a single edge per pair). Identity attention
gives the identity.

Cost: one Edmonds-Karp maximum flow (``O(V E²)``, ``V = (L + 1) N``, ``E = L N²``) per pair: ``N²`` flows per
image, pure Python — for small graphs (the official code's 6-layer, ~20-token sentences; a 7x7 ViT grid takes
seconds). :func:`attention_flow` refuses graphs above ``max_nodes``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from attnzoo.ops.dcal.rollout import check_attentions
from attnzoo.validation import check_int


def residual_attention(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(L, B, N, N)``: each block's head-averaged attention plus the identity, rows renormalised (``Ā``)."""
    _, n = check_attentions(attentions)
    eye = torch.eye(n, dtype=attentions[0].dtype, device=attentions[0].device)
    augmented = torch.stack([a.mean(1) + eye for a in attentions])
    return augmented / augmented.sum(-1, keepdim=True)


def max_flow(capacity: list[list[float]], source: int, sink: int) -> float:
    """Edmonds-Karp maximum flow of a directed graph given as a dense ``capacity[u][v]`` matrix (``>= 0``)."""
    size = len(capacity)
    residual = [row[:] for row in capacity]
    neighbours = [[v for v in range(size) if capacity[u][v] > 0 or capacity[v][u] > 0] for u in range(size)]
    total = 0.0
    while True:
        parent = [-1] * size
        parent[source] = source
        queue = deque([source])
        while queue and parent[sink] == -1:
            u = queue.popleft()
            for v in neighbours[u]:
                if parent[v] == -1 and residual[u][v] > 0:
                    parent[v] = u
                    queue.append(v)
        if parent[sink] == -1:
            return total
        bottleneck, v = float("inf"), sink
        while v != source:
            bottleneck = min(bottleneck, residual[parent[v]][v])
            v = parent[v]
        v = sink
        while v != source:
            residual[parent[v]][v] -= bottleneck
            residual[v][parent[v]] += bottleneck
            v = parent[v]
        total += bottleneck


def layered_capacities(augmented: torch.Tensor) -> list[list[float]]:
    """The attention graph of one image's ``(L, N, N)`` ``Ā``: node ``l N + a``; edge ``(l, a) -> (l - 1, b)``
    of capacity ``Ā_l[a, b]`` (the official ``get_adjmat``)."""
    layers, n, _ = augmented.shape
    size = (layers + 1) * n
    capacity = [[0.0] * size for _ in range(size)]
    values = augmented.tolist()
    for layer in range(1, layers + 1):
        for a in range(n):
            row = capacity[layer * n + a]
            for b in range(n):
                row[(layer - 1) * n + b] = values[layer - 1][a][b]
    return capacity


def raw_attention_flow(attentions: Sequence[torch.Tensor], max_nodes: int = 600) -> torch.Tensor:
    """``(B, N, N)`` maximum flows from each output token (rows) to each input token (columns), not normalised."""
    check_int("max_nodes", max_nodes)
    batch, n = check_attentions(attentions)
    nodes = (len(attentions) + 1) * n
    if nodes > max_nodes:
        raise ValueError(f"attention flow over {len(attentions)} layers of {n} tokens is a graph of {nodes} nodes; "
                         f"expected at most max_nodes={max_nodes} (N² Edmonds-Karp flows in pure Python: use "
                         "attention_rollout for large graphs, or raise max_nodes)")
    augmented = residual_attention(attentions).to(torch.float64).cpu()
    top = len(attentions) * n
    flows = torch.zeros(batch, n, n, dtype=torch.float64)
    for b in range(batch):
        capacity = layered_capacities(augmented[:, b])
        for i in range(n):
            for j in range(n):
                flows[b, i, j] = max_flow(capacity, top + i, j)
    return flows.to(dtype=attentions[0].dtype, device=attentions[0].device)


def attention_flow(attentions: Sequence[torch.Tensor], max_nodes: int = 600) -> torch.Tensor:
    """Attention flow ``(B, N, N)`` of ``attentions`` (``(B, H_l, N, N)`` per block, first block first): each
    row the maximum flows from that output token to every input token, normalised to sum 1 (module docstring).

    >>> import torch
    >>> eye = torch.eye(4).expand(1, 2, 4, 4)
    >>> bool(torch.equal(attention_flow([eye, eye]), torch.eye(4)[None]))
    True
    """
    flows = raw_attention_flow(attentions, max_nodes)
    return flows / flows.sum(-1, keepdim=True)

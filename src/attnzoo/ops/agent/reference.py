"""Agent attention, the oracle: both softmaxes explicitly, then their product as the effective ``N x N`` matrix.

``O = (softmax(Q Aᵀ s + B₂) · softmax(A Kᵀ s + B₁)) V``: the agent-mediated attention matrix is formed in
full (it is row-stochastic) before it touches ``V``, the opposite association of the fast path.
O(N² Dv + N M D) time, O(N²) memory.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size


def agent_probabilities(query: torch.Tensor, key: torch.Tensor, agents: torch.Tensor, agent_bias: torch.Tensor | None,
                        query_bias: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Agent broadcast ``softmax(Q Aᵀ s + B₂)`` ``(B, H, N, M)`` and aggregation ``softmax(A Kᵀ s + B₁)``
    ``(B, H, M, N)``."""
    aggregate = torch.matmul(agents, key.transpose(-1, -2)) * scale
    broadcast = torch.matmul(query, agents.transpose(-1, -2)) * scale
    if agent_bias is not None:
        aggregate = aggregate + agent_bias
    if query_bias is not None:
        broadcast = broadcast + query_bias
    return torch.softmax(broadcast, dim=-1), torch.softmax(aggregate, dim=-1)


def agent_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, agents: torch.Tensor, *,
                    agent_bias: torch.Tensor | None, query_bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` q/k, ``(B, H, N, Dv)`` v, ``(B, H, M, D)`` agents -> ``(B, H, N, Dv)``."""
    check_dense_size("the N x N attention of agent_attention's reference", (*query.shape[:-1], key.shape[-2]),
                     query.dtype, "impl='gemm'")
    broadcast, aggregate = agent_probabilities(query, key, agents, agent_bias, query_bias, scale)
    return torch.matmul(torch.matmul(broadcast, aggregate), value)

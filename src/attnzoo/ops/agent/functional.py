"""Agent attention (arXiv 2312.08874: Han et al., "Agent Attention: On the Integration of Softmax and Linear
Attention", ECCV 2024, arXiv 2312.08874), with the official ``AgentAttention`` semantics (agent_swin.py,
agent_pvt.py).

``M`` agent tokens ``A`` (the layer pools them from the queries) first aggregate the values, then broadcast
them back to the queries::

    O = softmax(Q Aᵀ · s + B₂) · softmax(A Kᵀ · s + B₁) · V,     s = D^{-1/2}

a generalised linear attention with feature maps ``σ(Q Aᵀ)`` and ``σ(A Kᵀ)``. ``B₁`` (``(H, M, N)``, the
official ``an_bias`` interpolated + ``ah_bias + aw_bias``) and ``B₂`` (``(H, N, M)``, ``na_bias`` + ``ha_bias +
wa_bias``) are position biases built by the layer; the depthwise 3x3 convolution on ``V`` the official module
adds is a layer term too (:class:`attnzoo.layers.AgentAttention`). Non-causal.

Implementations: ``gemm`` (two SDPA calls, O(N·M·(D + Dv))) and ``reference`` (explicit softmaxes, effective
``N x N`` matrix). Verified by reading the official code: scale ``head_dim^{-0.5}`` applied to the agents /
queries before the product, biases added before each softmax, no normalisation beyond the softmaxes.
Reduction (tested): with ``A = K`` (``M = N``) and ``B₁`` restricting agent ``a`` to key ``a`` (0 on the
diagonal, ``-inf`` elsewhere), ``V_A = V`` and the op is ordinary softmax attention ``softmax(Q Kᵀ s) V``.
Without that bias it is not: ``softmax(K Kᵀ s)`` still mixes the values.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, check_tensor_like, check_token_set, empty_output

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "agent_attention"


def agent_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, agents: torch.Tensor,
                    agent_bias: torch.Tensor | None = None, query_bias: torch.Tensor | None = None, *,
                    scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Agent attention. ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, Dv)``, ``agents``
    ``(B, H, M, D)`` -> ``(B, H, N, Dv)``.

    ``agent_bias``: ``(H, M, N)`` added to the agents' logits over the keys; ``query_bias``: ``(H, N, M)``
    added to the queries' logits over the agents; ``scale`` defaults to ``D^{-1/2}``. ``impl``: ``"auto"``,
    ``"gemm"`` or ``"reference"``.
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    b, h, n, d = query.shape
    m = check_token_set("agents", agents, query)
    if agent_bias is not None:
        check_tensor_like("agent_bias", agent_bias, (h, m, n), query)
    if query_bias is not None:
        check_tensor_like("query_bias", query_bias, (h, n, m), query)
    scale = check_scale("scale", scale, d ** -0.5)
    tensors = [t for t in (query, key, value, agents, agent_bias, query_bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        tensors, bias=agent_bias is not None or query_bias is not None))
    if b == 0 or h == 0:
        return empty_output(query, key + agents.sum() * 0, value)
    return implementation.fn(query, key, value, agents, agent_bias=agent_bias, query_bias=query_bias, scale=scale)

"""Registry entry of agent attention (arXiv 2312.08874)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.agent import AgentAttention
from attnzoo.ops.agent.functional import VARIANT_NAME, agent_attention
from attnzoo.ops.agent.gemm import agent_gemm
from attnzoo.ops.agent.reference import agent_reference
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Agent Attention: On the Integration of Softmax and Linear Attention", 2024, "2312.08874", 12),
    layout=SEQUENCE,
    summary="M agent tokens pooled from the queries: softmax(Q A^T s + B2) softmax(A K^T s + B1) V with agent "
            "biases (+ depthwise conv on V in the layer); O(N M D)",
    op=agent_attention,
    implementations={
        "gemm": Implementation("gemm", agent_gemm, AUTOGRAD_ANY_FLOAT,
                               "agents aggregate V, queries read the agents: two SDPA calls, O(N M D)"),
        "reference": Implementation("reference", agent_reference, AUTOGRAD_ANY_FLOAT,
                                    "explicit softmaxes and their N x N product (oracle)"),
    },
    layer=AgentAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "resolution": (8, 6), "agent_num": 9},
    size_options={"resolution": tuple},  # the (H, W) grid the agent biases are built for
))

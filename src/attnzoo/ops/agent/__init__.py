"""Agent attention (arXiv 2312.08874): reference and batched-GEMM implementations."""

from attnzoo.ops.agent.functional import agent_attention

__all__ = ["agent_attention"]

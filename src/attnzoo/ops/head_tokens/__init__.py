"""DHVT's head-token attention, HI-MHSA (arXiv 2210.05958): the functional op (reference and SDPA)."""

from attnzoo.ops.head_tokens.functional import head_token_attention

__all__ = ["head_token_attention"]

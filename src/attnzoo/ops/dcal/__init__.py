"""Dual cross-attention learning, DCAL (Zhu et al. 2022, arXiv 2205.02151): the attention rollout, global-local
cross-attention (GLCA) on the top-R queries and pair-wise cross-attention (PWCA) against a distractor image."""

from attnzoo.ops.dcal.functional import pwca_attention
from attnzoo.ops.dcal.glca import glca_attention
from attnzoo.ops.dcal.rollout import attention_rollout
from attnzoo.ops.dcal.selection import select_top_queries

__all__ = ["attention_rollout", "glca_attention", "pwca_attention", "select_top_queries"]

"""Registry entry of grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245), family "heads": the baseline
of Sigma's DiffQKV (MHA / MQA / GQA, Appendix B.1). It has no op of its own: grouped K/V heads are a drop-in option
of full softmax attention (``enable_gqa``, :mod:`attnzoo.ops.dropin`), so the variant registers that op and its
implementations (the same objects, nothing duplicated) with its own layer,
:class:`attnzoo.layers.GroupedQueryAttention`."""

from __future__ import annotations

import attnzoo.ops.softmax.registration  # noqa: F401  (registers softmax_attention, whose implementations these are)
from attnzoo.layers.grouped_query import GroupedQueryAttention
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.registry import SEQUENCE, TOKENS, Paper, Variant, get_variant, register

PAPER = Paper("GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints", 2023,
              "2305.13245", None)

register(Variant(
    name="grouped_query_attention",
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="grouped-query attention: groups of query heads share num_kv_heads K/V heads (MHA when equal, MQA when "
            "1); softmax_attention with enable_gqa",
    op=softmax_attention,
    implementations=dict(get_variant("softmax_attention").implementations),
    causal=True,
    layer=GroupedQueryAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "num_kv_heads": 2},
    aliases=("gqa",),
))

"""Registry entry of DiffQKV attention (Sigma, arXiv 2501.13629), family "heads"."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.diffqkv import DiffQKVAttention
from attnzoo.ops.diffqkv.functional import diffqkv_attention
from attnzoo.ops.diffqkv.grouped import diffqkv_grouped
from attnzoo.ops.diffqkv.reference import diffqkv_reference
from attnzoo.ops.diffqkv.sdpa import diffqkv_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Sigma: Differential Rescaling of Query, Key and Value for Efficient Language Models", 2025,
              "2501.13629", None)
SDPA_FEATURES = CUSTOM_BACKWARD.features | {"attn_mask", "key_padding", "varlen", "cross"}
FEATURES = AUTOGRAD_ANY_FLOAT.features | SDPA_FEATURES | {"weights", "top_k"}

register(Variant(
    name="diffqkv_attention",
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="DiffQKV: K and V with their own head counts and dims (query head i reads K head ⌊i·Hk/Hq⌋, V head "
            "⌊i·Hv/Hq⌋), a K transform for a halved K dim, augmented Q, optional top-k V fetch; MHA/MQA/GQA as "
            "special cases",
    op=diffqkv_attention,
    implementations={
        "sdpa": Implementation("sdpa", diffqkv_sdpa, replace(CUSTOM_BACKWARD, features=SDPA_FEATURES),
                               "query-head groups folded into the batch, the shared K (or V) head a stride-0 view, "
                               "SDPA with enable_gqa; no top_k, no weights"),
        "grouped": Implementation("grouped", diffqkv_grouped, replace(AUTOGRAD_ANY_FLOAT, features=FEATURES),
                                  "one batched GEMM per shared K head, probabilities regrouped per V head; K and V "
                                  "never repeated"),
        "reference": Implementation("reference", diffqkv_reference, replace(AUTOGRAD_ANY_FLOAT, features=FEATURES),
                                    "K and V index-expanded to every query head (Eq. 3), dense scores + explicit "
                                    "mask, top-k V rows gathered (oracle)"),
    },
    causal=True,
    layer=DiffQKVAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "num_k_heads": 1, "num_v_heads": 2, "head_dim_k": 4},
    aliases=("diffqkv",),
))

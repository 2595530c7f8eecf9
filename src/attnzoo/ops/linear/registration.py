"""Registry entry of feature-map linear attention (Katharopoulos et al. 2020, the baseline of arXiv 2106.12566,
2110.11945, 2405.17381)."""

from __future__ import annotations

from attnzoo.layers.linear import LinearAttention
from attnzoo.ops.lightning.registration import three_forms
from attnzoo.ops.linear import feature_linear as linear
from attnzoo.registry import SEQUENCE, TOKENS, Paper, Variant, register

register(Variant(
    name=linear.VARIANT_NAME,
    family="linear",
    paper=Paper("Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention", 2020,
                "2006.16236", None),
    layout=SEQUENCE,
    summary="feature-map linear attention φ(Q)φ(K)ᵀV (elu+1, relu, identity, FAVOR+ softmax kernel), causal or "
            "not, normalised or not; reference / chunked / recurrent with state",
    op=linear.linear_attention,
    implementations=three_forms(linear.linear_chunked, linear.linear_recurrent, linear.linear_reference),
    causal=True,
    layer=LinearAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
    compare_default=True,
))

"""Head-interaction attention of DHVT's HI-MHSA (Lu et al. 2022, "Bridging the Gap Between Vision Transformers
and Convolutional Neural Networks on Small Datasets", NeurIPS 2022, arXiv 2210.05958), as the official
``HI_Attention`` (``vision_transformer.py`` of ArieSeirack/DHVT, commit a86fedab) computes it.

The layer (:class:`attnzoo.layers.HeadTokenAttention`) pools each head's channel group over the tokens into one
*head token* per head and appends the ``M`` head tokens to the ``N`` tokens; this op is the attention that
follows: every token and every head token attends to all ``N + M`` of them, per head::

    [O; O_h] = softmax([Q; Q_h] [K; K_h]ᵀ · scale) [V; V_h]

with ``Q, K (B, H, N, D)``, ``V (B, H, N, Dv)`` of the tokens and ``Q_h, K_h (B, H, M, D)``, ``V_h
(B, H, M, Dv)`` of the head tokens (the official code projects both with the same ``qkv`` linear); it returns
``(O, O_h)``. The fusion of the head tokens back into the class token happens after the output projection and
is the layer's. Implementations: ``sdpa`` (the two sets concatenated and run by
:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`, SDPA's flash kernel: O(N + M) memory, first-order backward) and
``reference`` (the concatenation with dense scores, :func:`attnzoo.ops.dense_attention`). Time
O((N + M)² · (D + Dv)); the head tokens add ``M = H`` rows and columns.

Verified: the layer equals the official ``HI_Attention`` transcribed with copied weights (outputs and gradients),
head tokens whose keys are pushed to ``-inf`` scores give vanilla MHSA, and ``sdpa`` equals the reference
forward and backward (``tests/test_head_tokens.py`` and the registry contract).
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, check_tensor_like, check_token_set

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "dhvt_head_token_attention"


def check_head_tokens(query: torch.Tensor, value: torch.Tensor, head_query: torch.Tensor, head_key: torch.Tensor,
                      head_value: torch.Tensor) -> int:
    """Check the head tokens' ``(B, H, M, D)`` queries and keys and ``(B, H, M, Dv)`` values against the tokens'
    ``query`` and ``value``; returns ``M``."""
    m = check_token_set("head_query", head_query, query)
    if check_token_set("head_key", head_key, query) != m:
        raise ValueError(f"head_key has shape {tuple(head_key.shape)}; expected head_query's {m} head tokens "
                         f"{tuple(head_query.shape)}")
    b, h, _, dv = value.shape
    check_tensor_like("head_value", head_value, (b, h, m, dv), query)
    return m


def head_token_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, head_query: torch.Tensor,
                         head_key: torch.Tensor, head_value: torch.Tensor, *, scale: float | None = None,
                         impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of ``N`` tokens and ``M`` head tokens over all ``N + M`` of them.

    ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, Dv)``; ``head_query``, ``head_key``
    ``(B, H, M, D)``, ``head_value`` ``(B, H, M, Dv)`` -> ``(out (B, H, N, Dv), head_out (B, H, M, Dv))``.
    ``scale`` defaults to ``D ** -0.5`` (the official ``head_dim ** -0.5``); ``impl``: ``"auto"``, ``"sdpa"``
    or ``"reference"``.

    >>> import torch
    >>> q = k = v = torch.randn(2, 4, 17, 8)            # a class token and 16 patches, 4 heads
    >>> hq = hk = hv = torch.randn(2, 4, 4, 8)          # one head token per head
    >>> out, head_out = head_token_attention(q, k, v, hq, hk, hv)
    >>> tuple(out.shape), tuple(head_out.shape)
    ((2, 4, 17, 8), (2, 4, 4, 8))
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_head_tokens(query, value, head_query, head_key, head_value)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value, head_query, head_key, head_value], length=key.shape[2] + head_key.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        anchor = sum(t.sum() for t in (query, key, value, head_query, head_key, head_value)) * 0
        return value.new_zeros(value.shape) + anchor, head_value.new_zeros(head_value.shape) + anchor
    return implementation.fn(query, key, value, head_query, head_key, head_value, scale=scale)

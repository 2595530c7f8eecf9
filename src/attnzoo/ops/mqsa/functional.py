"""Multi-query self-attention (MQSA) of MQSA-TED (Zhu et al., "Collaboration and Transition: Distilling Item
Transitions into Multi-Query Self-Attention for Sequential Recommendation", WSDM 2024, arXiv 2311.01056; official TF1 code
``zhuty16/MQSA-TED`` ``MQSA_TED.py``, commit 91c9001).

Over an item sequence, each position ``t`` asks two queries of the same keys and values, causally
(``j <= t``):

- the short-range query ``q_t`` (the item itself: SASRec's query);
- the long-range query ``q̄_t = mean(q_{t-L+1}, ..., q_t)`` over the valid items of the last ``L = window``
  positions (the official ``seq_avg``, ``L = 3`` in the README's run line);

``O_t = alpha · softmax(q_t Kᵀ · s) V + (1 - alpha) · softmax(q̄_t Kᵀ · s) V`` (``alpha = 0.5`` by default,
as the official fusion weight), ``s = D^-1/2``.

What was verified against the official code and what differs: the long query is the causal mean over the valid
items of the last ``L`` positions (``seq_avg / (mask_avg + 1e-24)``), attention is causal with padded keys
masked and padded query positions zeroed (its key, causality and query masks). The official model runs two
whole SASRec stacks with their own weights (short: ``Q = W LN(x)``; long: ``Q = W LN(mean_L x)``) and mixes
their *item logits* with ``alpha``; this op mixes two queries of one attention (shared ``K``, ``V``), with the
mean taken of the projected queries (``W mean(x) = mean(W x)`` exactly for an affine projection; the official
layer norm sits between the mean and the projection). :class:`attnzoo.models.recsys.MQSARecommender` builds the
official two-stack model with this op. ``window = 1`` or ``alpha = 1`` is causal softmax attention.

Implementations: ``sdpa`` (one causal SDPA call per query kind) and ``reference`` (dense scores, explicit mask).
Layout ``(B, H, N, D)``; time O(N² D) per query kind, memory O(N D) with SDPA's flash kernels.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import check_key_padding
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import ArgumentTypeError, check_int, check_qkv, check_real, check_scale, is_real

VARIANT_NAME = "mqsa_attention"
LAYOUT = "(B, H, N, D)"


def check_alpha(alpha: float) -> float:
    """The fusion weight: a real number in ``[0, 1]``."""
    if not is_real(alpha):
        raise ArgumentTypeError(f"alpha={alpha!r}: expected a real number in [0, 1], got {type(alpha).__name__}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r}: expected a real number in [0, 1]")
    return check_real("alpha", alpha, inclusive=True)


def mqsa_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int = 3,
                   alpha: float = 0.5, scale: float | None = None, impl: str = "auto", *,
                   key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Causal multi-query self-attention (see the module): ``(B, H, N, D)`` queries and keys, ``(B, H, N, Dv)``
    values -> ``(B, H, N, Dv)``.

    ``window``: the long query's span ``L >= 1``; ``alpha`` in ``[0, 1]``: the short query's weight; ``scale``
    defaults to ``D ** -0.5``; ``key_padding_mask`` ``(B, N)`` (``True`` = padding item: never a key, left out
    of the window means, output zero); ``impl``: ``"auto"`` (``"sdpa"``), ``"sdpa"`` or ``"reference"``.

    >>> import torch
    >>> q = k = v = torch.randn(2, 1, 10, 16)
    >>> mqsa_attention(q, k, v, window=3, alpha=0.5).shape
    torch.Size([2, 1, 10, 16])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    window = check_int("window", window)
    alpha = check_alpha(alpha)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    features = []
    if key_padding_mask is not None:
        check_key_padding(key_padding_mask, query.shape[0], query.shape[2])
        if key_padding_mask.device != query.device:
            raise ValueError(f"key_padding_mask is on {key_padding_mask.device}; expected the query's device "
                             f"{query.device}")
        features.append("key_padding")
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value], causal=True, features=features, length=query.shape[2]))
    return implementation.fn(query, key, value, window=window, alpha=alpha, scale=scale,
                             key_padding_mask=key_padding_mask)

"""Full softmax attention (Vaswani et al. 2017, arXiv 1706.03762): the dense baseline every family is measured
against, as a registered op with the drop-in conventions of :mod:`attnzoo.ops.dropin`.

``O = softmax(Q Kᵀ · scale + mask) V`` over every key (``is_causal=True``: the keys at or before the query's
position ``Nk - Nq + i``, FlashAttention's bottom-right alignment, so a decode step sees its whole KV cache).
Implementations: ``sdpa`` (``torch.nn.functional.scaled_dot_product_attention`` with every mask folded into one;
the flash kernels where no mask is needed) and ``reference`` (:func:`attnzoo.ops.dropin.dropin_attention`, dense
scores and an explicit mask). Verified: ``sdpa`` equals the reference forward and backward in float64 and
float32 on every case of ``attnzoo/ops/softmax/testing.py`` (masks of each shape, padding, packed sequences,
grouped KV heads, decode and prefill-chunk shapes), and queries that see no key give zeros with finite
gradients (``tests/test_softmax.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import check_dropin
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_scale


def causal_mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """Causal mask function: key position ``kv`` at or before query position ``q`` (positions as
    :func:`attnzoo.ops.dropin.dropin_visibility` gives them: bottom-right aligned, per packed sequence)."""
    return q >= kv


def softmax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_causal: bool = False,
                      scale: float | None = None, impl: str = "auto", *, attn_mask: torch.Tensor | None = None,
                      key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                      enable_gqa: bool = False, dropout_p: float = 0.0,
                      return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Full (dense) softmax attention: ``(B, Hq, Nq, D)`` queries, ``(B, Hkv, Nk, D)`` keys and
    ``(B, Hkv, Nk, Dv)`` values -> ``(B, Hq, Nq, Dv)``.

    ``is_causal``: query ``i`` (at position ``Nk - Nq + i``) sees keys ``j <= Nk - Nq + i`` (bottom-right
    aligned, unlike SDPA's own ``is_causal``, which is top-left aligned when ``Nq != Nk``). ``scale`` defaults to
    ``D ** -0.5``. Drop-in options (:mod:`attnzoo.ops.dropin`): ``attn_mask`` (boolean, ``True`` = take part,
    or additive), ``key_padding_mask`` (``True`` = padding), packed ``cu_seqlens``, grouped KV heads
    (``enable_gqa=True``), ``dropout_p`` (applied whenever > 0) and ``return_weights`` (then ``(out, weights)``);
    a query that sees no key outputs zeros. ``impl``: ``"auto"``, ``"sdpa"`` or ``"reference"``; the
    ``sdpa`` path runs everything but ``return_weights``. Time O(Nq · Nk · D).

    >>> import torch
    >>> q = torch.randn(1, 8, 1, 16)                      # one new token, 8 query heads
    >>> k = v = torch.randn(1, 2, 100, 16)                # its KV cache: 100 tokens, 2 KV heads
    >>> softmax_attention(q, k, v, is_causal=True, enable_gqa=True).shape
    torch.Size([1, 8, 1, 16])
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    check_flag("is_causal", is_causal)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation("softmax_attention", impl, CallFacts.of(
        [query, key, value], causal=is_causal, features=dropin.features, length=key.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        weights = query.new_zeros(*query.shape[:-1], key.shape[2])
        return (out, weights) if return_weights else out
    return implementation.fn(query, key, value, is_causal=is_causal, scale=scale, dropin=dropin)

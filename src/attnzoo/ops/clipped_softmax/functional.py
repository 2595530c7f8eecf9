"""Clipped softmax attention (Bondarenko, Nagel, Blankevoort, "Quantizable Transformers: Removing Outliers by
Helping Attention Heads Do Nothing", NeurIPS 2023, arXiv 2306.12929, Section 4.1).

``O = clip((ζ − γ) · softmax(Q Kᵀ · scale + mask) + γ, 0, 1) V``: softmax attention whose probabilities are
stretched to ``[γ, ζ]`` and clipped to ``[0, 1]``, so that a head can give a token exactly zero weight (and the
whole row exactly zero, a head that "does nothing") with finite logits, which removes the incentive for the
huge activations (outliers) that make transformers hard to quantise. γ = 0, ζ = 1 is softmax attention.
Implementations: ``chunked`` (queries in chunks with a hand-written backward; the full probabilities are never
held) and ``reference`` (dense scores, an explicit mask, every drop-in feature). Verified: both against each other
forward and backward in float64 on the cases of ``attnzoo/ops/clipped_softmax/testing.py``; γ = 0, ζ = 1
against :func:`attnzoo.ops.softmax_attention` with every drop-in feature; the clipped softmax against the
official code's ``clipped_softmax`` transcribed (``tests/test_clipped_softmax.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.clipped_softmax.stretch import check_stretch
from attnzoo.ops.dropin import check_dropin
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_scale

VARIANT_NAME = "clipped_softmax_attention"


def clipped_softmax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_causal: bool = False,
                              scale: float | None = None, impl: str = "auto", *, gamma: float = -0.025,
                              zeta: float = 1.0, attn_mask: torch.Tensor | None = None,
                              key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                              enable_gqa: bool = False, dropout_p: float = 0.0,
                              return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Clipped softmax attention: ``(B, Hq, Nq, D)`` queries, ``(B, Hkv, Nk, D)`` keys and ``(B, Hkv, Nk, Dv)``
    values -> ``(B, Hq, Nq, Dv)``.

    ``gamma`` (γ ≤ 0) and ``zeta`` (ζ ≥ 1) are the stretch factors; the defaults are the paper's BERT setting
    ``clipped(-.025:1)``; for the paper's α parametrisation pass ``gamma=gamma_from_alpha(alpha, T)`` (γ = −α / T).
    ``is_causal``: query ``i`` (at position ``Nk - Nq + i``) sees keys ``j <= Nk - Nq + i``; ``scale`` defaults
    to ``D ** -0.5``. Drop-in options as :func:`attnzoo.ops.softmax_attention` (:mod:`attnzoo.ops.dropin`): a
    masked pair has probability 0 and clipped weight 0; ``return_weights`` returns the clipped weights. ``impl``:
    ``"auto"``, ``"chunked"`` (masks, padding, grouped KV heads, longer keys) or ``"reference"`` (every
    feature). Time O(Nq · Nk · D); memory O(Nq · Nk) for the reference, O(64 · Nk) per chunk for ``chunked``.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 16, 8)
    >>> out, weights = clipped_softmax_attention(q, k, v, gamma=-0.3, impl="reference", return_weights=True)
    >>> out.shape, bool((weights == 0).any())
    (torch.Size([1, 2, 16, 8]), True)
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    check_flag("is_causal", is_causal)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    gamma, zeta = check_stretch(gamma, zeta)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value], causal=is_causal, features=dropin.features, length=key.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        weights = query.new_zeros(*query.shape[:-1], key.shape[2])
        return (out, weights) if return_weights else out
    return implementation.fn(query, key, value, is_causal=is_causal, scale=scale, gamma=gamma, zeta=zeta,
                             dropin=dropin)

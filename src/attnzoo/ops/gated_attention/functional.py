"""Gated attention (Bondarenko, Nagel, Blankevoort, "Quantizable Transformers: Removing Outliers by Helping
Attention Heads Do Nothing", NeurIPS 2023, arXiv 2306.12929, Section 4.2, eq. 5).

``out_h = gate_h ⊙ softmax(Q_h K_hᵀ · scale + mask) V_h``: each head's output, per query token, times a gate
in [0, 1] (the layer computes it as ``sigmoid(G(x))`` from the layer input, see
:class:`attnzoo.layers.GatedAttention`), so that a head can "do nothing" by closing its gate instead of
pushing all its attention onto a no-op token with huge logits (the outliers that make transformers hard to
quantise). A gate of 1 is softmax attention, a gate of 0 an exactly zero output. Implementations: ``sdpa``
(:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa` times the gate) and ``reference`` (the dense oracle
:func:`attnzoo.ops.dropin.dropin_attention` times the gate), every drop-in feature of the softmax op.
Verified: both against each other forward and backward (gate gradients included) in float64 on the softmax
cases; gate 1 against :func:`attnzoo.ops.softmax_attention`; the official module (``bert_attention.py``)
transcribed with copied weights (``tests/test_gated_attention.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import check_dropin
from attnzoo.ops.gated_attention.gate import check_gate
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_scale

VARIANT_NAME = "gated_attention"


def gated_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, gate: torch.Tensor,
                    is_causal: bool = False, scale: float | None = None, impl: str = "auto", *,
                    attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                    cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False, dropout_p: float = 0.0,
                    return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Gated softmax attention: ``(B, Hq, Nq, D)`` queries, ``(B, Hkv, Nk, D)`` keys, ``(B, Hkv, Nk, Dv)``
    values and a ``(B, Hq, Nq)`` ``gate`` in [0, 1] -> ``(B, Hq, Nq, Dv)``, ``gate[..., None] *
    softmax_attention(query, key, value, ...)``.

    ``is_causal``, ``scale`` and the drop-in options as :func:`attnzoo.ops.softmax_attention`
    (``return_weights``: the softmax probabilities, which the gate does not change). ``impl``: ``"auto"``,
    ``"sdpa"`` or ``"reference"``. Time O(Nq · Nk · D) + O(Nq · Dv) for the gate.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 5, 8)
    >>> gate = torch.tensor([0.0, 1.0])[None, :, None].expand(1, 2, 5)   # head 0 closed, head 1 open
    >>> out = gated_attention(q, k, v, gate)
    >>> bool((out[:, 0] == 0).all())
    True
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    check_flag("is_causal", is_causal)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    check_gate(gate, query)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value, gate], causal=is_causal, features=dropin.features, length=key.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1]) + (
            query.sum() + key.sum() + value.sum() + gate.sum()) * 0
        weights = query.new_zeros(*query.shape[:-1], key.shape[2])
        return (out, weights) if return_weights else out
    return implementation.fn(query, key, value, gate, is_causal=is_causal, scale=scale, dropin=dropin)

"""Gated positional self-attention, GPSA (d'Ascoli et al. 2021, "ConViT: Improving Vision Transformers with Soft
Convolutional Inductive Biases", arXiv 2103.10697), as the official code computes it.

Per head ``h``, on a 2-D grid of ``N = X · Y`` tokens::

    A^h_ij = [ (1 - σ(λ_h)) · softmax_j(q_i · k_j · scale) + σ(λ_h) · softmax_j(v_pos^h · r_ij) ] / Z_i
    O^h_i  = Σ_j A^h_ij v_j

with ``r_ij = (Δcol, Δrow, Δcol² + Δrow²)`` (:mod:`attnzoo.ops.gpsa.positions`), ``v_pos^h`` the ``(H, 3)``
``pos_weight``, ``λ`` the per-head ``gate`` (official ``gating_param``: ``λ -> -∞`` is content attention,
``λ -> +∞`` positional attention) and ``Z_i`` the row sum (official ``attn /= attn.sum(-1)``; the mixture of
two softmax rows already sums to 1, so ``Z_i = 1`` up to round-off and its gradient is zero).

Implementations: ``sdpa`` (content attention through :func:`attnzoo.ops.softmax_attention` (``impl="sdpa"``,
no ``B·H·N²`` weights formed), the positional attention ``(H, N, N)`` once for the whole batch, mixed after the
value products: ``O = (1 - σ) · SDPA(q, k, v) + σ · P v``; memory O(H · N² + B · H · N · D)) and ``reference``
(the official ``get_attention``: positional scores per batch entry, both softmaxes, mixture, row normalisation,
then ``A v``; O(B · H · N²) memory). Time O(B · H · N² · D) for both.

Verified against timm's ``GPSA`` (``timm/models/convit.py``, the official module with device arguments), transcribed
with copied weights into ``tests/test_gpsa.py``: outputs, ``get_attention_map`` non-locality and ``local_init``
weights; reductions gate ``-∞`` = softmax attention and gate ``+∞`` = content-free positional attention, and the
local init's shifts (``torch.roll``), are tested there too.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_qkv, check_scale, check_tensor_like, empty_output

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "gpsa_attention"


def gpsa_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pos_weight: torch.Tensor,
                   gate: torch.Tensor, scale: float | None = None, return_weights: bool = False,
                   impl: str = "auto") -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """GPSA on a 2-D grid: ``(B, H, X, Y, D)`` queries and keys, ``(B, H, X, Y, Dv)`` values ->
    ``(B, H, X, Y, Dv)``.

    ``pos_weight`` ``(H, 3)``: each head's weights of ``(Δcol, Δrow, Δcol² + Δrow²)``; ``gate`` ``(H,)``: the
    gating logits ``λ`` (``σ(λ)`` of the attention goes to position); ``scale`` defaults to ``D ** -0.5``;
    ``return_weights``: also return the mixed attention ``A`` ``(B, H, N, N)`` (reference only);
    ``impl``: ``"auto"``, ``"sdpa"`` or ``"reference"``. Time O(B · H · N² · D), ``N = X · Y``.
    """
    check_qkv(query, key, value, spatial_dims=2, layout=LAYOUT)
    heads = query.shape[1]
    check_tensor_like("pos_weight", pos_weight, (heads, 3), query)
    check_tensor_like("gate", gate, (heads,), query)
    check_flag("return_weights", return_weights)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    facts = CallFacts.of([query, key, value, pos_weight, gate], bias=True,
                         features=("weights",) if return_weights else ())
    implementation = select_implementation(VARIANT_NAME, impl, facts)
    if query.shape[0] == 0 or heads == 0:
        out = empty_output(query, key, value) + (pos_weight.sum() + gate.sum()) * 0
        n = query.shape[2] * query.shape[3]
        return (out, query.new_zeros(*query.shape[:2], n, n)) if return_weights else out
    return implementation.fn(query, key, value, pos_weight=pos_weight, gate=gate, scale=scale,
                             return_weights=return_weights)

"""Pair-wise cross-attention, PWCA (Zhu et al., "Dual Cross-Attention Learning for Fine-Grained Visual
Categorization and Object Re-Identification", CVPR 2022, arXiv 2205.02151, Sec. 3.3, Eq. 4).

``f_PWCA(Q_1, K_c, V_c) = softmax(Q_1 K_cᵀ / √d) V_c`` with ``K_c = [K_1; K_2]`` and ``V_c = [V_1; V_2]``:
the queries of image ``I_1`` attend to the keys and values of ``I_1`` and of a distractor image ``I_2``, one
softmax over all ``N_1 + N_2`` scores, so that attention mass leaks to the distractor (a training-time
regulariser; the branch shares its weights with self-attention and is removed at inference, see
:class:`attnzoo.layers.DCALEncoder`). With ``I_2 = I_1`` it is exactly self-attention: each weight halves and
each value appears twice. Implementations: ``sdpa`` (the two key/value blocks concatenated, one call of the
softmax op's SDPA path; the copy is O(N D), under 1% of the attention time at ViT sizes, see
:mod:`attnzoo.ops.dcal.sdpa`) and ``reference`` (dense scores of the two blocks normalised together, the paper's
"N+1 self-attention scores and N+1 cross-attention scores"). No official code exists (the catalog found none):
verified against the paper's equation, by the duplicate-pair and ``-inf``-distractor reductions and against
:func:`attnzoo.ops.softmax_attention` on explicitly concatenated keys (``tests/test_dcal.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import check_sequence_inputs
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_scale, check_tensor_like

VARIANT_NAME = "pwca_attention"


def check_distractor(key: torch.Tensor, value: torch.Tensor, key2: torch.Tensor, value2: torch.Tensor) -> None:
    """``key2`` ``(B, Hkv, N2, D)`` and ``value2`` ``(B, Hkv, N2, Dv)``: the distractor's keys and values with the
    batch, heads and head dims of ``key`` / ``value`` and any ``N2 >= 1`` tokens, in their dtype and device."""
    b, h, _, d = key.shape
    if not isinstance(key2, torch.Tensor) or key2.dim() != 4 or key2.shape[2] == 0:
        raise ValueError(f"key2 has shape {tuple(getattr(key2, 'shape', ()))}; expected the distractor's keys "
                         f"(B, Hkv, N2, D) = ({b}, {h}, N2 >= 1, {d}), the key's batch, heads and head dim")
    check_tensor_like("key2", key2, (b, h, key2.shape[2], d), key, "the key")
    check_tensor_like("value2", value2, (b, h, key2.shape[2], value.shape[-1]), value, "the value")


def pwca_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key2: torch.Tensor,
                   value2: torch.Tensor, scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Pair-wise cross-attention: ``(B, H, Nq, D)`` queries of the target image against its ``(B, H, Nk, D)``
    keys / ``(B, H, Nk, Dv)`` values and the distractor's ``key2`` ``(B, H, N2, D)`` / ``value2``
    ``(B, H, N2, Dv)``, one softmax over the ``Nk + N2`` keys -> ``(B, H, Nq, Dv)``.

    ``scale`` defaults to ``D ** -0.5``; ``impl``: ``"auto"``, ``"sdpa"`` or ``"reference"``. Not causal (images).
    Time O(Nq · (Nk + N2) · D); no ``(Nq, Nk + N2)`` matrix on the ``sdpa`` path.

    >>> import torch
    >>> q = k = v = torch.randn(2, 3, 10, 8)
    >>> out = pwca_attention(q, k, v, k, v)          # I2 = I1: exactly self-attention
    >>> bool(torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6))
    True
    """
    check_sequence_inputs(query, key, value, enable_gqa=False)
    check_distractor(key, value, key2, value2)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value, key2, value2], length=key.shape[2] + key2.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return query.new_zeros(*query.shape[:-1], value.shape[-1]) + (
            query.sum() + key.sum() + value.sum() + key2.sum() + value2.sum()) * 0
    return implementation.fn(query, key, value, key2, value2, scale=scale)

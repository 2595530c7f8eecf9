"""DARE target attention (Feng et al., "Long-Sequence Recommendation Models Need Decoupled Embeddings", ICLR 2025,
arXiv 2410.02604; official code ``thuml/DARE`` ``model/attention_pytorch.py`` and ``model/din_pytorch.py``,
commit c72e087).

A target item (a candidate) attends over a user's history with *decoupled embeddings*: the scores use only the
attention embeddings ``E_att`` of the target and of the history items, the output aggregates only their
representation embeddings ``E_repr``::

    w_j = softmax_j(E_att[target] · E_att[h_j] / sqrt(Da)),      out = sum_j w_j E_repr[h_j]

(``attention(..., attn_func='scaled_dot_product', use_time_mode='add')``: one dot product scaled by the
attention width). ``top_k`` keeps, per target, the ``k`` history items of highest score and renormalises over
them (the TWIN two-stage search, ``soft_search``; ``-top_k 20`` in the official run scripts). Tying the two
tables (``E_att = E_repr``) is the TWIN/DIN baseline the paper compares against. The attention width ``Da`` may
differ from the representation width ``Dr`` (the paper's cheaper search).

Verified against the official code: scaled dot product over the attention embeddings, masking of padded
history, softmax, weighted sum of the representation embeddings; the top-k choice by the unmasked scores. Where
this differs: a padded history item is never chosen by the top-k search (the official code ranks the
``-2^32 + 1``-filled scores, so with fewer valid items than ``k`` it re-admits padding), and a target whose whole
history is padding gets zeros (the official fill gives a uniform average over the padding). The time-embedding
split of the ``concat`` mode (``q_sem · k_sem / sqrt(d_sem) + q_time · k_time / sqrt(d_time)``) is not built.

Implementations: ``sdpa`` (SDPA with one head, the top-k choice as a mask) and ``reference`` (dense scores).
Layout: targets ``(B, M, Da)``, history ``(B, N, Da)`` and ``(B, N, Dr)``; out ``(B, M, Dr)``. Time
O(M N (Da + Dr)).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import check_key_padding
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_float_tensors, check_optional_int, check_scale

VARIANT_NAME = "dare_attention"


def _check_inputs(target: torch.Tensor, history_attention: torch.Tensor,
                  history_representation: torch.Tensor) -> None:
    check_float_tensors({"target": target}, 3, "(B, M, Da)")
    check_float_tensors({"history_attention": history_attention}, 3, "(B, N, Da)")
    check_float_tensors({"history_representation": history_representation}, 3, "(B, N, Dr)")
    b, _, da = target.shape
    if history_attention.shape[0] != b or history_attention.shape[2] != da:
        raise ValueError(f"history_attention has shape {tuple(history_attention.shape)}; expected (B, N, Da) = "
                         f"({b}, N, {da}), the target's batch and attention width")
    if tuple(history_representation.shape[:2]) != tuple(history_attention.shape[:2]):
        raise ValueError(f"history_representation has shape {tuple(history_representation.shape)}; expected "
                         f"(B, N, Dr) with (B, N) = {tuple(history_attention.shape[:2])} of history_attention")
    if not target.dtype == history_attention.dtype == history_representation.dtype:
        raise TypeError(f"target, history_attention, history_representation dtypes differ: {target.dtype}, "
                        f"{history_attention.dtype}, {history_representation.dtype}; expected one dtype")
    if not target.device == history_attention.device == history_representation.device:
        raise ValueError("target, history_attention, history_representation are on different devices; "
                         "expected one device")
    if target.shape[1] == 0 or history_attention.shape[1] == 0 or da == 0 or history_representation.shape[2] == 0:
        raise ValueError(f"target {tuple(target.shape)}, history {tuple(history_attention.shape)} / "
                         f"{tuple(history_representation.shape)}: expected at least one target, one history item "
                         "and widths >= 1")


def dare_attention(target: torch.Tensor, history_attention: torch.Tensor, history_representation: torch.Tensor,
                   top_k: int | None = None, scale: float | None = None, impl: str = "auto", *,
                   key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Target attention with decoupled embeddings (see the module).

    ``target`` ``(B, M, Da)``: the attention embeddings of ``M`` targets; ``history_attention`` ``(B, N, Da)`` and
    ``history_representation`` ``(B, N, Dr)``: each history item's attention and representation embeddings;
    ``top_k``: keep the ``k >= 1`` best-scoring items per target (``None``: all); ``scale`` defaults to
    ``Da ** -0.5``; ``key_padding_mask`` ``(B, N)`` (``True`` = padding item); ``impl``: ``"auto"``
    (``"sdpa"``), ``"sdpa"`` or ``"reference"``. Returns ``(B, M, Dr)``.

    >>> import torch
    >>> out = dare_attention(torch.randn(4, 1, 8), torch.randn(4, 50, 8), torch.randn(4, 50, 16), top_k=10)
    >>> out.shape
    torch.Size([4, 1, 16])
    """
    _check_inputs(target, history_attention, history_representation)
    top_k = check_optional_int("top_k", top_k)
    scale = check_scale("scale", scale, target.shape[-1] ** -0.5)
    features = [] if top_k is None else ["top_k"]
    if key_padding_mask is not None:
        check_key_padding(key_padding_mask, target.shape[0], history_attention.shape[1])
        if key_padding_mask.device != target.device:
            raise ValueError(f"key_padding_mask is on {key_padding_mask.device}; expected the target's device "
                             f"{target.device}")
        features.append("key_padding")
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [target, history_attention, history_representation], features=features, length=history_attention.shape[1]))
    return implementation.fn(target, history_attention, history_representation, scale=scale, top_k=top_k,
                             key_padding_mask=key_padding_mask)

"""Attention rollout (Abnar & Zuidema 2020, arXiv 2005.00928), as DCAL (Zhu et al. 2022, arXiv 2205.02151,
Sec. 3.2, Eq. 2) uses it to find the patches its global-local cross-attention queries.

``S̄_l = 0.5 · S_l + 0.5 · E`` (``S_l`` the head-averaged attention of block ``l``, ``E`` the identity for the
residual connection), ``Ŝ_L = S̄_L · S̄_{L-1} ··· S̄_1``. As the official rollout code
(samiraabnar/attention_flow ``attention_graph_util.py::compute_joint_attention`` at 8044f53, and the
jacobgil/vit-explain ``vit_rollout.py::rollout`` at 15a81d3 that DCAL reimplementations reuse), ``S_l + E`` is
renormalised by its row sums, which equals ``0.5 S_l + 0.5 E`` for row-stochastic attention and keeps ``Ŝ``
row-stochastic otherwise. Verified: against a numpy transcription of ``compute_joint_attention`` and an
explicit product of ``0.5 S̄ + 0.5 E`` (``tests/test_dcal.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.registry import FLOAT_DTYPES


def check_attentions(attentions: Sequence[torch.Tensor]) -> tuple[int, int]:
    """``attentions`` is a non-empty list or tuple of ``(B, H_l, N, N)`` floating tensors of one dtype and device,
    with the same ``B`` and ``N`` and entries >= 0 (probabilities; checked in eager calls); returns ``(B, N)``."""
    if not isinstance(attentions, (list, tuple)) or not attentions:
        raise TypeError(f"attentions={type(attentions).__name__}: expected a non-empty list or tuple of (B, H, N, N) "
                        "attention probabilities, one per block, first block first")
    first = attentions[0]
    for i, a in enumerate(attentions):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"attentions[{i}] must be a torch.Tensor, got {type(a).__name__}")
        if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape[1] == 0 or a.shape[-1] == 0:
            raise ValueError(f"attentions[{i}] has shape {tuple(a.shape)}; expected (B, H >= 1, N, N) attention "
                             "probabilities of N >= 1 tokens")
        if i and (a.shape[0], a.shape[-1]) != (first.shape[0], first.shape[-1]):
            raise ValueError(f"attentions[{i}] has shape {tuple(a.shape)}; expected batch {first.shape[0]} and "
                             f"{first.shape[-1]} tokens as attentions[0] {tuple(first.shape)}")
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"attentions[{i}].dtype={a.dtype}; expected a floating dtype")
        if a.dtype != first.dtype or a.device != first.device:
            raise TypeError(f"attentions[{i}] is {a.dtype} on {a.device}; expected attentions[0]'s {first.dtype} "
                            f"on {first.device}")
        if not torch.compiler.is_compiling() and bool((a < 0).any()):
            raise ValueError(f"attentions[{i}] has negative entries (min {a.min().item():.4g}); expected attention "
                             "probabilities >= 0 (softmax outputs)")
    return first.shape[0], first.shape[-1]


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """The accumulated attention ``Ŝ_L = S̄_L ··· S̄_1`` ``(B, N, N)`` of ``attentions``, the ``(B, H_l, N, N)``
    attention probabilities of blocks ``1..L`` (first block first): heads averaged, the identity added and rows
    renormalised (``S̄ = 0.5 S + 0.5 E`` for row-stochastic ``S``). Row 0 is the class token's accumulated
    attention that :func:`attnzoo.ops.dcal.select_top_queries` ranks. Time O(L · B · (H N² + N³)).

    >>> import torch
    >>> s = torch.softmax(torch.randn(2, 3, 5, 5), -1)
    >>> r = attention_rollout([s, s])
    >>> r.shape, bool(torch.allclose(r.sum(-1), torch.ones(2, 5)))
    (torch.Size([2, 5, 5]), True)
    """
    _, n = check_attentions(attentions)
    first = attentions[0]
    eye = torch.eye(n, dtype=first.dtype, device=first.device)
    result = None
    for a in attentions:
        augmented = a.mean(1) + eye
        augmented = augmented / augmented.sum(-1, keepdim=True)
        result = augmented if result is None else torch.matmul(augmented, result)
    return result

"""SOFT, softmax-free attention (arXiv 2110.11945: Lu et al., "SOFT: Softmax-free Transformer with Linear Complexity",
NeurIPS 2021, arXiv 2110.11945), with the official ``SoftmaxFreeAttentionKernel`` semantics.

Keys are the queries (``K = Q``); with ``q`` scaled by ``D^{-1/4}`` the Gaussian kernel
``exp(-|q_i - q_j|² / 2)`` (= ``exp(-|·|² / (2√D))`` on raw queries) is approximated through ``M`` landmarks
``l_a`` (Nyström)::

    out = A · (Â + εI)⁺ · (Aᵀ V),   A_ia = exp(-|q_i·s - l_a|²/2),   Â_ab = exp(-|l_a - l_b|²/2)

no softmax, no row normalisation. The landmarks live in the scaled space: the official layer computes them
from the scaled queries (strided convolution, LayerNorm, GELU; see :class:`attnzoo.layers.SoftAttention`).

Implementations: ``newton`` (the official algorithm: expanded-distance GEMM kernels, Newton–Schulz inverse
with ``newton_iters`` steps and the analytic backward of ``SOFT/kernel/inverse.py``; O(N·M·(D + Dv) + M³)
time, no N x N matrix) and ``reference`` (the dense ``N x N`` reconstruction with the exact inverse and
explicit-difference kernels). They agree when the Newton iteration has converged, which the registered cases
ensure (well separated landmarks); the tests also show a badly conditioned landmark kernel where 20 steps
are not enough. Verified against the official ``models/softmax_free_transformer.py`` and ``inverse.py``
(read, not run: they need CUDA): scale ``D^{-1/4}``, ``exp(-d²/2)``, ``α = 0.9·2/max rowsum²``, ``P = Â +
0.01 I``, fixed iteration count, backward ``-Vᵀ G Vᵀ``.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_int, check_qkv, check_real, check_scale, check_token_set, empty_output

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "soft_attention"


def soft_attention(query: torch.Tensor, value: torch.Tensor, landmarks: torch.Tensor, *, newton_iters: int = 20,
                   regularizer: float = 0.01, scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """SOFT attention. ``query`` ``(B, H, N, D)`` (also the keys), ``value`` ``(B, H, N, Dv)``, ``landmarks``
    ``(B, H, M, D)`` in the scaled query space -> ``(B, H, N, Dv)``.

    ``newton_iters``: Newton–Schulz steps of the fast path (official: 20); ``regularizer``: ``ε`` added to the
    landmark kernel's diagonal (official: 0.01); ``scale`` defaults to ``D^{-1/4}``. ``impl``: ``"auto"``,
    ``"newton"`` or ``"reference"``.
    """
    check_qkv(query, query, value, spatial_dims=1, layout=LAYOUT)
    b, h, _, d = query.shape
    check_token_set("landmarks", landmarks, query)
    check_int("newton_iters", newton_iters, 0)
    regularizer = check_real("regularizer", regularizer, inclusive=True)
    scale = check_scale("scale", scale, d ** -0.25)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, value, landmarks]))
    if b == 0 or h == 0:
        return empty_output(query, landmarks.sum() * 0, value)
    return implementation.fn(query, value, landmarks, scale=scale, newton_iters=newton_iters,
                             regularizer=regularizer)

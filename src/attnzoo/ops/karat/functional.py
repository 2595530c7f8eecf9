"""Fourier-KArAt (arXiv 2503.10632, "Kolmogorov-Arnold Attention: Is Learnable Attention Better for Vision
Transformers?").

Softmax is replaced by a learnable low-rank operator on each row of the logits ``𝒜 = Q Kᵀ · scale``::

    h_kp = sum_q φ_pq(𝒜_kq),   φ_pq(x) = sum_{m=1}^{G} a_pqm cos(m x) + b_pqm sin(m x)   (p = 1..r)
    σ̂(𝒜)_k = W h_k   (W: N x r),        O = σ̂(𝒜) V

per head (the "modular" KArAt with the Fourier basis and zero base activation b(x) = 0, the paper's best;
r = 12 in all its experiments). Layout ``(B, H, N, D)``; ``cos_coef`` / ``sin_coef`` ``(H, r, N, G)`` hold
``a`` / ``b``, ``proj`` ``(H, N, r)`` holds ``W``; the operator is tied to the token count N. Implementations:
``blocked`` (fast path: query blocks, ``h (Wᵀ V)`` so ``σ̂`` is never formed, no feature concatenation, features
recomputed in the backward pass: O(N · r) memory besides one block) and ``reference`` (explicit N x N ``σ̂`` and
all the features, O(N² · G) memory). The N² · G cosines and sines dominate both, so the gain is in memory
traffic, not in the operation count: at N = 4096, one head, D = 64, r = 12, G = 3 on 2 CPU threads, 0.78 s
vs 1.55 s forward+backward and 475 vs 1189 MiB peak.
Not causal (ViT attention). Verified against the authors' project page (``MaitySubhajit/KArAt``
``docs/index.html``): the official code is not released ("coming soon"), so nothing was checked against code.
Open points: the page shows no normalisation of the rows of ``σ̂`` and none is applied here; its parameter
counts (e.g. ViT-Tiny 5.53M -> 6.29M with G3B) imply ``N · r · (2G + 3)`` parameters per operator, ``2 N r``
more than the ``N · r · (2G + 1)`` of the formula above, which the page does not account for.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, check_tensor_like, empty_output

VARIANT_NAME = "fourier_karat"
LAYOUT = "(B, H, N, D)"


def fourier_karat(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cos_coef: torch.Tensor,
                  sin_coef: torch.Tensor, proj: torch.Tensor, scale: float | None = None,
                  impl: str = "auto") -> torch.Tensor:
    """Fourier-KArAt attention. ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, Dv)`` -> ``(B, H, N, Dv)``.

    ``cos_coef``, ``sin_coef``: ``(H, r, N, G)``; ``proj``: ``(H, N, r)``; ``scale`` defaults to ``D ** -0.5``;
    ``impl``: ``"auto"`` (``"blocked"``), ``"blocked"`` or ``"reference"``. Time O(B · H · N² · G · r);
    memory O(B · H · N² · G) for the reference, O(B · H · N · r) plus one block for ``blocked``.
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    heads, n = query.shape[1], query.shape[2]
    if not isinstance(cos_coef, torch.Tensor) or cos_coef.dim() != 4:
        shape = tuple(cos_coef.shape) if isinstance(cos_coef, torch.Tensor) else type(cos_coef).__name__
        raise ValueError(f"cos_coef has shape {shape}; expected 4-D (H, r, N, G)")
    rank, grid = cos_coef.shape[1], cos_coef.shape[3]
    if rank == 0 or grid == 0:
        raise ValueError(f"cos_coef has shape {tuple(cos_coef.shape)}; expected rank r >= 1 and grid G >= 1")
    check_tensor_like("cos_coef", cos_coef, (heads, rank, n, grid), query)
    check_tensor_like("sin_coef", sin_coef, (heads, rank, n, grid), query)
    check_tensor_like("proj", proj, (heads, n, rank), query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    facts = CallFacts.of([query, key, value, cos_coef, sin_coef, proj])
    implementation = select_implementation(VARIANT_NAME, impl, facts)
    if query.shape[0] == 0 or heads == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, cos_coef=cos_coef, sin_coef=sin_coef, proj=proj, scale=scale)

"""Sparsifiner attention (Wei et al., "Sparsifiner: Learning Sparse Instance-Dependent Attention for Efficient
Vision Transformers", CVPR 2023, arXiv 2303.13755), with the semantics of the official ``Attention`` /
``MaskPredictor`` (``lim142857/Sparsifiner``, ``src/models/sparsifiner.py``).

A cheap predictor gives a low-rank approximation ``A_approx = C P_b`` of each head's attention
(:mod:`.connectivity`); each query keeps the ``top_k`` keys of highest approximate attention, and attends to
those only::

    M_i = top_k_j( (C P_b)_{ij} )                                  (the connectivity mask, not differentiated)
    O_i = Σ_{j ∈ M_i} softmax_{j ∈ M_i}( q_i · k_j · scale ) v_j   (the official masked_fill(-inf) + softmax)

The first ``global_queries`` queries (a ViT's class token: the official code prepends an all-ones row for it) attend
to every key and have no coefficients. ``top_k = N`` is dense attention. The official budget is
``top_k = ceil(attn_keep_rate · N)`` (:class:`attnzoo.layers.SparsifinerAttention`); ties in the top-k go to the
lower key index (the official ``torch.topk`` leaves them unspecified).

Implementations: ``blocked`` (:mod:`.blocked`: one query block at a time, never an ``N x N`` matrix, O(N · top_k)
memory) and ``reference`` (:mod:`.reference`: the explicit ``N x N`` mask, dense masked softmax). The selected
keys are computed once, here (:func:`.connectivity.connectivity_indices`, blockwise), and handed to both, so they
attend to the same keys by construction; the selection itself is tested against a full stable sort of the dense
``C P_b``. Verified: ``blocked`` equals the reference forward and backward (float64, float32) on the cases of
``testing.py``; ``top_k = N`` equals dense softmax attention; the official ``Attention`` + ``MaskPredictor``,
transcribed in ``tests/test_sparsifiner.py``, with copied weights.
"""

from __future__ import annotations

import torch

from attnzoo.ops.sparsifiner.connectivity import connectivity_indices
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_int, check_qkv, check_scale, check_tensor_like, empty_output

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "sparsifiner_attention"


def check_budget(top_k: int, tokens: int) -> int:
    """``top_k`` is an int in ``[1, N]`` (``N`` = the number of keys)."""
    check_int("top_k", top_k)
    if top_k > tokens:
        raise ValueError(f"top_k={top_k!r}: expected at most the number of keys N={tokens} (1 <= top_k <= N; "
                         "top_k = N is dense attention)")
    return top_k


def check_connectivity(coef: torch.Tensor, basis: torch.Tensor, query: torch.Tensor, global_queries: int) -> None:
    """``coef`` ``(B, H, N - global_queries, K)`` and ``basis`` ``(K, N)``, ``K >= 1``, in the query's dtype and
    on its device."""
    b, h, n, _ = query.shape
    check_int("global_queries", global_queries, minimum=0)
    if global_queries > n:
        raise ValueError(f"global_queries={global_queries!r}: expected at most the number of queries N={n}")
    for name, t in (("coef", coef), ("basis", basis)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if basis.dim() != 2 or basis.shape[0] == 0:
        raise ValueError(f"basis has shape {tuple(basis.shape)}; expected (K, N) = (K >= 1, {n}), the low-rank "
                         "basis shared by every head")
    rank = basis.shape[0]
    check_tensor_like("basis", basis, (rank, n), query)
    check_tensor_like("coef", coef, (b, h, n - global_queries, rank), query)


def sparsifiner_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, coef: torch.Tensor,
                          basis: torch.Tensor, top_k: int, *, global_queries: int = 0, scale: float | None = None,
                          impl: str = "auto") -> torch.Tensor:
    """Sparsifiner attention (see the module): ``(B, H, N, D)`` query and key, ``(B, H, N, Dv)`` value ->
    ``(B, H, N, Dv)``.

    ``coef`` ``(B, H, N - global_queries, K)`` (the predictor's basis coefficients) and ``basis`` ``(K, N)``
    give the approximate attention ``coef @ basis``; each of the last ``N - global_queries`` queries keeps its
    ``top_k`` keys (``1 <= top_k <= N``) of highest approximate attention, the first ``global_queries`` keep all
    keys. No gradient reaches ``coef`` or ``basis`` (the mask is detached, as in the paper; train the predictor
    with :func:`attnzoo.ops.sparsifiner_distillation_loss`). ``scale`` defaults to ``D ** -0.5``. ``impl``:
    ``"auto"``, ``"blocked"`` or ``"reference"``. Time O(N² (K + D)) (the predictor's product and the blocked
    scores; on CPU one GEMM over all keys per query block beats gathering the selected ones), memory
    O(N · top_k) for ``blocked``.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 50, 16)
    >>> coef, basis = torch.rand(1, 2, 50, 6).softmax(-1), torch.rand(6, 50)
    >>> sparsifiner_attention(q, k, v, coef, basis, top_k=13).shape
    torch.Size([1, 2, 50, 16])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_connectivity(coef, basis, query, global_queries)
    n = query.shape[2]
    check_budget(top_k, n)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(
        [query, key, value, coef, basis], length=n))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)
    indices = connectivity_indices(coef, basis, top_k)
    return implementation.fn(query, key, value, indices, global_queries=global_queries, scale=scale)

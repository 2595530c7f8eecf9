"""Kernelized attention with relative positional encoding (arXiv 2106.12566: Luo et al., "Stable, Fast and Accurate:
Kernelized Attention with Relative Positional Encoding", NeurIPS 2021, arXiv 2106.12566).

Softmax attention with a per-head, per-offset RPE logit ``b_{i-j}`` factorises as
``exp(q_i·k_j/√D + b_{i-j}) = exp(b_{i-j}) · exp(q_i·k_j/√D)``; the second factor is replaced by a feature-map
kernel ``φ(q_i)·φ(k_j)`` (Performer positive random features by default), the first is a Toeplitz matrix
``C_ij = exp(b_{i-j})``::

    z_i = Σ_j C_ij (φ(q_i)·φ(k_j)) v_j / Σ_j C_ij (φ(q_i)·φ(k_j))

(the denominator is dropped with ``normalize=False``). Causal: ``C_ij = 0`` for ``j > i``. ``C`` is applied
by FFT (the paper's Algorithm 1), O(N log N) in length instead of O(N²).

Implementations: ``fft`` (O(N log N · m · Dv) time, O(N · m · Dv) memory; causal in O(N log² N) with exact
causality, see :mod:`.toeplitz`) and ``reference`` (dense ``N x N``). Official code: none public (the paper's
code sits in the OpenReview supplement, not read); the algorithm was checked against the paper's description
as summarised in ``shared/papers/catalog-41-61.md`` and Performer's positive random features. Not reproduced:
the paper's orthogonal random features (the features here are the i.i.d. ones of
:mod:`attnzoo.ops.linear.feature_maps`). With identity features, no normaliser and geometric coefficients
``b_t = -s·t`` (causal) this is exactly decayed linear (lightning) attention (tested).

Drop-in options (:mod:`attnzoo.ops.dropin` conventions), run by both implementations: grouped KV heads
(``enable_gqa=True``, ``key``/``value`` of ``Hkv`` heads, repeated to the query's heads; ``rpe`` stays per query
head) and a ``key_padding_mask`` ``(B, N)`` (``True`` = padding: the padded tokens' features ``φ(k)`` and values
are zeroed *after* the feature map, so they enter neither numerator nor normaliser; positions, hence RPE offsets,
are kept; a query whose every key is padded outputs zeros). Keys must be as long as queries (the RPE is over
one sequence); ``attn_mask``, packed ``cu_seqlens``, ``dropout_p > 0`` and ``return_weights`` raise
``NotSupportedError``.
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.dropin import check_dropin
from attnzoo.ops.linear.feature_maps import FEATURE_MAPS, random_projection
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_tensor_like, empty_output

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "kernelized_rpe_attention"


def default_num_features(head_dim: int) -> int:
    """Performer's default number of random features, ``int(D · ln D)`` (at least 1)."""
    return max(1, int(head_dim * math.log(head_dim)))


def kernelized_rpe_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             rpe: torch.Tensor | None = None, *, feature_map: str = "softmax_kernel",
                             projection: torch.Tensor | None = None, num_features: int | None = None,
                             seed: int = 0, is_causal: bool = False, normalize: bool = True,
                             block_size: int = 64, impl: str = "auto", attn_mask: torch.Tensor | None = None,
                             key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                             enable_gqa: bool = False, dropout_p: float = 0.0,
                             return_weights: bool = False) -> torch.Tensor:
    """Kernelized attention with RPE. ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, Dv)`` ->
    ``(B, H, N, Dv)``.

    ``rpe``: ``(H, 2N - 1)`` logits, ``rpe[h, N - 1 + t] = b_t`` for the offset ``t = i - j`` (query minus key;
    with ``is_causal`` only ``t >= 0`` is read); ``None``: ``b = 0``. ``feature_map``: one of
    ``attnzoo.ops.linear.FEATURE_MAPS`` (``"softmax_kernel"``: positive random features
    ``exp(x W - |x|²/2)/√m`` on ``x = q · D^{-1/4}``). ``projection``: ``W`` ``(D, m)``; ``None`` draws it from
    ``seed`` with ``m = num_features`` (default ``int(D ln D)``). ``normalize``: divide by the kernel's row sums.
    ``block_size``: the causal FFT's dense diagonal blocks. ``impl``: ``"auto"``, ``"fft"`` or ``"reference"``.
    Drop-in options (``enable_gqa``, ``key_padding_mask``; the others refused): see the module docstring.
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    if dropin.cross:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected the query's {query.shape[2]} tokens "
                         f"(Nk == Nq): {VARIANT_NAME} has no cross-attention (its RPE is over one sequence)")
    heads, n, d = query.shape[1], query.shape[2], query.shape[3]
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map={feature_map!r}: expected one of {FEATURE_MAPS}")
    check_flag("is_causal", is_causal)
    check_flag("normalize", normalize)
    check_int("block_size", block_size)
    if rpe is None:
        rpe = query.new_zeros(heads, 2 * n - 1)
    check_tensor_like("rpe", rpe, (heads, 2 * n - 1), query)
    if feature_map == "softmax_kernel":
        if projection is None:
            m = default_num_features(d) if num_features is None else check_int("num_features", num_features)
            projection = random_projection(d, m, check_int("seed", seed, 0), dtype=query.dtype, device=query.device)
        if not isinstance(projection, torch.Tensor) or projection.dim() != 2:
            raise ValueError(f"projection has shape {tuple(getattr(projection, 'shape', ()))}; expected 2-D (D, m)")
        check_tensor_like("projection", projection, (d, projection.shape[1]), query)
    elif projection is not None:
        raise ValueError(f"projection is given with feature_map={feature_map!r}; expected it only with "
                         "'softmax_kernel'")
    tensors = [t for t in (query, key, value, rpe, projection) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=is_causal, bias=True,
                                                                             length=query.shape[-2],
                                                                             features=dropin.features))
    if query.shape[0] == 0 or heads == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, rpe=rpe, feature_map=feature_map, projection=projection,
                             is_causal=is_causal, normalize=normalize, block_size=block_size, dropin=dropin)

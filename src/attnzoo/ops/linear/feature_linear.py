"""Generic linear attention with a feature map (Katharopoulos et al., ICML 2020, "Transformers are RNNs";
Performer's FAVOR+ random features, Choromanski et al., ICLR 2021).

With ``φ`` from :mod:`.feature_maps`, causal (sums over ``j <= t``) or not (over all ``j``)::

    o_t = Σ_j (φ(q_t)·φ(k_j)) v_j / (Σ_j φ(q_t)·φ(k_j) + eps)        (normalize=True)
    o_t = Σ_j (φ(q_t)·φ(k_j)) v_j                                      (normalize=False)

The normaliser is linear attention of the value 1, so the normalised op runs the same core on values with a
column of ones appended and divides; its state is ``(B, H, M, E + 1)``: ``Σ φ(k) vᵀ`` with ``Σ φ(k)`` as the
last column (``M`` = feature dim). Causal forms are those of :mod:`attnzoo.ops.lightning` without decay; non-causal ones
are the dense product (reference), ``φ(Q) (φ(K)ᵀ V)`` (chunked) and the state accumulated token by token
(recurrent). Verified: the three forms agree in float64 to 1e-10 (tests); softmax-kernel features approach
softmax attention as the feature count grows (test).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnzoo.ops.dense import check_dense_size
from attnzoo.ops.lightning.chunked import decayed_chunked
from attnzoo.ops.lightning.recurrent import decayed_recurrent
from attnzoo.ops.lightning.reference import decayed_reference
from attnzoo.ops.lightning.sequences import (
    check_linear_dropin,
    drop_padded,
    packed_as_batch,
    same_sequence,
    share_kv_heads,
)
from attnzoo.ops.linear.feature_maps import FEATURE_MAPS, apply_feature_map, random_projection
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import (
    check_flag,
    check_int,
    check_optional_int,
    check_real,
    check_tensor_like,
)

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "linear_attention"
Core = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def _global_state(key: torch.Tensor, value: torch.Tensor, initial_state: torch.Tensor | None) -> torch.Tensor:
    state = key.transpose(-1, -2) @ value
    return state if initial_state is None else state + initial_state


def noncausal_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: None,
                        initial_state: torch.Tensor | None, block_size: int,
                        output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(Q Kᵀ) V`` (+ ``Q S_0``) with the dense ``N x N`` scores; packed ``cu_seqlens`` (no states): scores
    between different sequences zeroed."""
    check_dense_size("the N x N scores of linear_attention's non-causal reference", (*query.shape[:-1], key.shape[-2]),
                     query.dtype, "impl='chunked' or 'recurrent'")
    scores = query @ key.transpose(-1, -2)
    if cu_seqlens is not None:
        scores = scores * same_sequence(cu_seqlens, query.shape[-2], query.device)
    out = scores @ value
    if initial_state is not None:
        out = out + query @ initial_state
    return out, _global_state(key, value, initial_state) if output_final_state else None


def noncausal_chunked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: None,
                      initial_state: torch.Tensor | None, block_size: int,
                      output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``Q (Kᵀ V + S_0)``: one ``M x E`` state for the whole sequence (packed ``cu_seqlens``: one per sequence,
    from the zero-padded batch of :func:`~attnzoo.ops.lightning.sequences.packed_as_batch`)."""
    if cu_seqlens is not None:
        return packed_as_batch(noncausal_chunked, query, key, value, None, cu_seqlens, block_size), None
    state = _global_state(key, value, initial_state)
    return query @ state, state if output_final_state else None


def noncausal_recurrent(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: None,
                        initial_state: torch.Tensor | None, block_size: int,
                        output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The state accumulated one token at a time (streaming encoder), then applied to every query (packed
    ``cu_seqlens``: every sequence's state stepped together in the zero-padded batch of
    :func:`~attnzoo.ops.lightning.sequences.packed_as_batch`)."""
    if cu_seqlens is not None:
        return packed_as_batch(noncausal_recurrent, query, key, value, None, cu_seqlens, block_size), None
    state = key.new_zeros(*key.shape[:2], key.shape[-1], value.shape[-1]) if initial_state is None else initial_state
    for t in range(key.shape[2]):
        state = state + key[:, :, t, :, None] * value[:, :, t, None, :]
    return query @ state, state if output_final_state else None


def _form(causal: Core, noncausal: Core) -> Core:
    """An implementation of :func:`linear_attention` from a causal and a non-causal core."""

    def run(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, normalize: bool,
            initial_state: torch.Tensor | None, output_final_state: bool, block_size: int,
            eps: float, cu_seqlens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if normalize:
            value = torch.cat([value, value.new_ones(*value.shape[:-1], 1)], dim=-1)
        core = causal if is_causal else noncausal
        out, final = core(query, key, value, None, initial_state, block_size, output_final_state,
                          cu_seqlens=cu_seqlens)
        if normalize:
            out = out[..., :-1] / (out[..., -1:] + eps)
        return out, final

    return run


linear_reference = _form(decayed_reference, noncausal_reference)
linear_chunked = _form(decayed_chunked, noncausal_chunked)
linear_recurrent = _form(decayed_recurrent, noncausal_recurrent)


def linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, feature_map: str = "elu",
                     is_causal: bool = True, normalize: bool = True, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, projection: torch.Tensor | None = None,
                     num_features: int | None = None, seed: int = 0, eps: float = 1e-6, block_size: int = 64,
                     impl: str = "auto", *, key_padding_mask: torch.Tensor | None = None,
                     cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False,
                     attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                     return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Linear attention ``φ(Q) φ(K)ᵀ V``, causal or not, normalised or not.

    ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, E)`` -> ``(B, H, N, E)``. ``feature_map``: one
    of ``"elu"``, ``"relu"``, ``"identity"``, ``"softmax_kernel"``; for the last, ``projection`` ``(D, m)``
    gives the random features, else ``m = num_features`` (default ``D``) are drawn from ``seed``.
    ``initial_state``: ``(B, H, M, E)``, or ``(B, H, M, E + 1)`` when normalising (last column ``Σ φ(k)``),
    with ``M`` the feature dim; ``output_final_state`` returns ``(out, final_state)`` in that shape. ``eps`` is
    added to the denominator. ``impl``: ``"auto"`` (chunked: O(N (block + M) E) causal, O(N M E) non-causal),
    ``"chunked"``, ``"recurrent"`` (token at a time) or ``"reference"`` (dense O(N²)).

    Drop-in options (:mod:`attnzoo.ops.dropin` conventions; how they are applied:
    :mod:`attnzoo.ops.lightning.sequences`), run by every implementation: ``enable_gqa=True`` with ``key`` /
    ``value`` of ``Hkv`` heads (``H % Hkv == 0``; states per query head); a ``key_padding_mask`` ``(B, N)``
    (``True`` = padding: ``φ(k)`` and ``v`` of that token are zeroed after the feature map, so it enters no
    state, score or normaliser; its query still gets an output, ``0`` where it sees no unpadded key when
    normalising); packed ``cu_seqlens`` (batch 1; causal: each sequence from a zero state, non-causal: sums per
    sequence; ``initial_state`` must be ``None`` and ``output_final_state`` ``False``, else ``ValueError``).
    Keys must be as long as queries (decode with ``initial_state``); ``attn_mask``, ``dropout_p > 0`` and
    ``return_weights`` raise ``NotSupportedError``.
    """
    dropin = check_linear_dropin(VARIANT_NAME, query, key, value, attn_mask=attn_mask,
                                 key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens, enable_gqa=enable_gqa,
                                 dropout_p=dropout_p, return_weights=return_weights, initial_state=initial_state,
                                 output_final_state=output_final_state)
    check_int("block_size", block_size)
    for name, flag in (("is_causal", is_causal), ("normalize", normalize), ("output_final_state", output_final_state)):
        check_flag(name, flag)
    eps = check_real("eps", eps, inclusive=True)
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map={feature_map!r}: expected one of {list(FEATURE_MAPS)}")
    b, h, _, d = query.shape
    if feature_map == "softmax_kernel":
        if projection is None:
            m = check_optional_int("num_features", num_features) or d
            projection = random_projection(d, m, check_int("seed", seed, 0), query.dtype, query.device)
        elif not isinstance(projection, torch.Tensor) or projection.dim() != 2 or projection.shape[0] != d:
            raise ValueError(f"projection has shape {tuple(getattr(projection, 'shape', ()))}; expected "
                             f"(head_dim={d}, num_features)")
        check_tensor_like("projection", projection, tuple(projection.shape), query)
    elif projection is not None:
        raise ValueError(f"projection is only used by feature_map='softmax_kernel', not {feature_map!r}")
    features = projection.shape[-1] if feature_map == "softmax_kernel" else d
    if initial_state is not None:
        check_tensor_like("initial_state", initial_state, (b, h, features, value.shape[-1] + normalize), query)
    tensors = [t for t in (query, key, value, initial_state, projection) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=is_causal,
                                                                            features=dropin.features,
                                                                            length=query.shape[2]))
    if b == 0 or h == 0:
        out = value.new_zeros(b, h, query.shape[2], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        final = query.new_zeros(b, h, features, value.shape[-1] + normalize)
        return (out, final) if output_final_state else out
    # key padding after the feature map: φ of a zeroed key is not zero (elu + 1 gives 1, softmax_kernel > 0)
    key, value = drop_padded(*share_kv_heads(apply_feature_map(key, feature_map, projection), value, h),
                             key_padding_mask)
    out, final = implementation.fn(apply_feature_map(query, feature_map, projection), key, value,
                                   is_causal=is_causal, normalize=normalize, initial_state=initial_state,
                                   output_final_state=output_final_state, block_size=block_size, eps=eps,
                                   cu_seqlens=cu_seqlens)
    return (out, final) if output_final_state else out

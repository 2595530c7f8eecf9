"""Lightning attention (arXiv 2405.17381: "Various Lengths, Constant Speed: Efficient Language Modeling with Lightning
Attention", Qin et al., ICML 2024, arXiv 2405.17381; TransNormerLLM's token mixer).

Causal, unnormalised, decayed linear attention with one decay per head::

    o_t = Σ_{j<=t} λ_h^{t-j} (q_t·k_j) v_j,    λ_h = exp(-s_h)

computed as intra-block masked attention plus an inter-block carried state (see :mod:`attnzoo.ops.lightning` for the
three forms and their costs). Slopes: :func:`alibi_slopes` (``lightning_attn/utils/utils.py::_build_slope_tensor``)
and :func:`tnl_slopes` (the per-layer scaling of ``examples/module/tnl_attn.py``). Verified: the TNL block and
its slope scaling were read in the official repository (OpenNLPLab/lightning-attention, ``tnl_attn.py``); the
block equations of ``lightning_attn2.py`` and the slope construction come from the project's notes on that code
(``papers/catalog-41-61.md`` section 54), and the ALiBi values are tested for h = 8 and h = 6. The three forms
agree with each other and with the dense oracle in float64 to 1e-10 (tests), including split sequences with the
state carried. Not reproduced: the Triton kernels and their hand-written backward (autograd is used).
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.lightning.sequences import check_linear_dropin, drop_padded, share_kv_heads
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_tensor_like

LAYOUT = "(B, H, N, D)"
VARIANT_NAME = "lightning_attention"


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi slopes ``(num_heads,)``: ``2^{-8i/h}``, i = 1..h, for a power of two ``h``; otherwise those of the
    nearest lower power of two followed by every other slope of the next one (Press et al.; the official
    ``_build_slope_tensor``)."""
    check_int("num_heads", num_heads)

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = power_of_two(closest)
    if closest < num_heads:
        slopes += power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float64)


def tnl_slopes(num_heads: int, layer_idx: int, num_layers: int) -> torch.Tensor:
    """TransNormerLLM's per-layer decay: ``alibi_slopes(h) · (1 - l / (L - 1) + 1e-5)``, so layer 0 decays
    most and the last layer almost not at all. A single-layer model (``L = 1``) keeps the ALiBi slopes."""
    check_int("num_layers", num_layers)
    if not 0 <= check_int("layer_idx", layer_idx, 0) < num_layers:
        raise ValueError(f"layer_idx={layer_idx!r}: expected 0 <= layer_idx < num_layers={num_layers}")
    factor = 1.0 if num_layers == 1 else 1 - layer_idx / (num_layers - 1) + 1e-5
    return alibi_slopes(num_heads) * factor


def lightning_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        decay: torch.Tensor | None = None, initial_state: torch.Tensor | None = None,
                        output_final_state: bool = False, block_size: int = 64,
                        impl: str = "auto", *, key_padding_mask: torch.Tensor | None = None,
                        cu_seqlens: torch.Tensor | None = None, enable_gqa: bool = False,
                        attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                        return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Causal decayed linear attention. ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, E)``.

    ``decay``: per-head slopes ``s_h >= 0`` ``(H,)`` (``λ_h = exp(-s_h)``; :func:`alibi_slopes`,
    :func:`tnl_slopes`), ``None`` for no decay. ``initial_state``: ``(B, H, D, E)`` state carried from earlier
    tokens. Returns ``out`` ``(B, H, N, E)``, or ``(out, final_state)`` with ``final_state`` ``(B, H, D, E)``
    when ``output_final_state``. ``block_size``: the chunked form's block (64, the official ``BLOCK``).
    ``impl``: ``"auto"`` (chunked), ``"chunked"`` (O(N (block + D) E) time), ``"recurrent"`` (token at a time,
    for decoding) or ``"reference"`` (dense O(N²) oracle). No scaling is applied to ``q·k``. Negative slopes
    raise ``ValueError`` in eager mode; under ``torch.compile`` that check of the tensor's values is skipped (it
    would break the graph), so a compiled call with negative slopes computes a growing, unchecked decay.

    Drop-in options (:mod:`attnzoo.ops.dropin` conventions; how they are applied:
    :mod:`attnzoo.ops.lightning.sequences`), run by every implementation: ``enable_gqa=True`` with ``key`` /
    ``value`` of ``Hkv`` heads (``H % Hkv == 0``; decays and states stay per query head ``H``); a
    ``key_padding_mask`` ``(B, N)`` (``True`` = padding: that token's key and value enter nothing, its query
    still gets an output, positions and decay steps are kept); packed ``cu_seqlens`` (batch 1, every sequence
    from a zero state; ``initial_state`` must be ``None`` and ``output_final_state`` ``False``, else
    ``ValueError``). Keys must be as long as queries (decode with ``initial_state``); ``attn_mask``,
    ``dropout_p > 0`` and ``return_weights`` raise ``NotSupportedError``.
    """
    dropin = check_linear_dropin(VARIANT_NAME, query, key, value, attn_mask=attn_mask,
                                 key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens, enable_gqa=enable_gqa,
                                 dropout_p=dropout_p, return_weights=return_weights, initial_state=initial_state,
                                 output_final_state=output_final_state)
    check_int("block_size", block_size)
    check_flag("output_final_state", output_final_state)
    b, h, _, d = query.shape
    if decay is not None:
        check_tensor_like("decay", decay, (h,), query)
        if not torch.compiler.is_compiling() and (decay < 0).any():  # a value check: skipped under compile
            raise ValueError(f"decay={decay.tolist()}: expected slopes >= 0 (λ = exp(-decay) <= 1)")
    if initial_state is not None:
        check_tensor_like("initial_state", initial_state, (b, h, d, value.shape[-1]), query)
    tensors = [t for t in (query, key, value, decay, initial_state) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=True,
                                                                            features=dropin.features,
                                                                            length=query.shape[2]))
    if b == 0 or h == 0:
        out = value.new_zeros(b, h, query.shape[2], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        final = query.new_zeros(b, h, d, value.shape[-1])
        return (out, final) if output_final_state else out
    key, value = drop_padded(*share_kv_heads(key, value, h), key_padding_mask)
    out, final = implementation.fn(query, key, value, decay, initial_state, block_size, output_final_state,
                                   cu_seqlens=cu_seqlens)
    return (out, final) if output_final_state else out

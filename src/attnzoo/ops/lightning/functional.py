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

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_qkv, check_tensor_like, empty_output

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
                        impl: str = "auto") -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Causal decayed linear attention. ``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, E)``.

    ``decay``: per-head slopes ``s_h >= 0`` ``(H,)`` (``λ_h = exp(-s_h)``; :func:`alibi_slopes`,
    :func:`tnl_slopes`), ``None`` for no decay. ``initial_state``: ``(B, H, D, E)`` state carried from earlier
    tokens. Returns ``out`` ``(B, H, N, E)``, or ``(out, final_state)`` with ``final_state`` ``(B, H, D, E)``
    when ``output_final_state``. ``block_size``: the chunked form's block (64, the official ``BLOCK``).
    ``impl``: ``"auto"`` (chunked), ``"chunked"`` (O(N (block + D) E) time), ``"recurrent"`` (token at a time,
    for decoding) or ``"reference"`` (dense O(N²) oracle). No scaling is applied to ``q·k``. Negative slopes
    raise ``ValueError`` in eager mode; under ``torch.compile`` that check of the tensor's values is skipped (it
    would break the graph), so a compiled call with negative slopes computes a growing, unchecked decay.
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
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
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=True))
    if b == 0 or h == 0:
        out = empty_output(query, key, value)
        final = query.new_zeros(b, h, d, value.shape[-1])
        return (out, final) if output_final_state else out
    out, final = implementation.fn(query, key, value, decay, initial_state, block_size, output_final_state)
    return (out, final) if output_final_state else out

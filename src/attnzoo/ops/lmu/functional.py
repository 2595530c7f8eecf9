"""LMU memory (arXiv 2402.04882, LMUFormer; the Legendre Memory Unit of Voelker et al. 2019), one memory per channel::

    m_t = Ā m_(t-1) + B̄ u_t        (equivalently m_t = sum_{s<=t} H_(t-s) u_s + Ā^(t+1) m_(-1),  H_t = Ā^t B̄)

with the ZOH-discretised Legendre system ``(Ā, B̄)`` of order ``d`` and window ``θ`` (see ``legendre.py``).
Layout: input ``(B, N, C)``, memory ``(B, N, C, d)`` (the ``d`` Legendre coefficients of each channel's last
``θ`` steps), state ``(B, C, d)``. LMUFormer's cell feeds one scalar ``u`` per token, i.e. ``C = 1`` here.
Implementations: ``chunked`` (``auto``'s choice: Toeplitz GEMMs inside 64-token chunks, state carried across
chunks, O(N · C · d · (64 + d)), exactly causal), ``fft`` (LMUFormer's parallel training form: FFT convolution
with ``H``, O(N log N · C · d), causal only up to roundoff), ``recurrent`` (decoding form: one step per token,
O(C · d²) per token) and ``reference`` (dense Toeplitz operator from explicit matrix powers, O(N² · d · C));
all take ``initial_state`` and give the same final state. Forward+backward at N = 4096 on 2 CPU threads:
C = 64, d = 16: chunked 39 ms, fft 123 ms, recurrent 218 ms; C = 1, d = 256 (LMUFormer's shape): fft 12 ms,
chunked 49 ms, recurrent 218 ms.
Drop-in inputs (conventions of :mod:`attnzoo.ops.dropin`, every implementation): ``key_padding_mask`` ``(B, N)``,
``True`` = padding: a padded token's input ``u`` is taken as zero, so it adds nothing to the memory, but it still
counts as one step (the memory decays through it, ``m_t = Ā m_(t-1)``) and its memory is still output;
``cu_seqlens`` ``(S + 1,)``, batch 1: each packed sequence starts from a zero memory (no ``initial_state``, no
final state).
Verified against ``zeyuliu1037/LMUFormer`` ``src/blocks/lmu_cell.py`` (``stateSpaceMatrices``: the A, B above
over θ, ``cont2discrete(..., dt=1, method="zoh")``; ``impulse``: ``H[:, t] = Ā^t B̄``; ``forward``: rfft/irfft at
length 2N, first N outputs; ``forward_recurrent``: ``m = m Āᵀ + u B̄ᵀ``). Differences: the official code stores
``H`` and its FFT for one fixed ``seq_len`` and in float32; here ``H`` is built (float64, cached) for any N.
"""

from __future__ import annotations

import torch

from attnzoo.ops.base_conv.common import (
    SEQUENCE_LAYOUT,
    check_sequence,
    check_sequence_dropin,
    zero_padded,
)
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_real, check_tensor_like

VARIANT_NAME = "lmu_memory"
LAYOUT = SEQUENCE_LAYOUT


def lmu_memory(x: torch.Tensor, order: int, theta: float, initial_state: torch.Tensor | None = None,
               output_final_state: bool = False,
               impl: str = "auto", *, key_padding_mask: torch.Tensor | None = None,
               cu_seqlens: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Legendre memory of every channel. ``x`` ``(B, N, C)`` -> ``(B, N, C, order)``.

    ``order``: memory size ``d >= 1``; ``theta``: window length in steps (> 0); ``initial_state``:
    ``(B, C, order)`` memory before the first token (zeros when ``None``); ``output_final_state``: also return
    the memory after the last token, ``(B, C, order)``, to continue with. ``impl``: ``"auto"``
    (``"chunked"``), ``"chunked"``, ``"fft"``, ``"recurrent"`` or ``"reference"``. Causal: ``m_t`` depends on
    ``x_s`` for ``s <= t`` only. ``key_padding_mask`` ``(B, N)`` (``True`` = padding: that token's input counts
    as zero) and ``cu_seqlens`` ``(S + 1,)`` (packed sequences of a batch of one, each from a zero memory; then
    ``initial_state=None`` and ``output_final_state=False``): see the module docstring.
    """
    check_sequence("x", x)
    check_int("order", order)
    theta = check_real("theta", theta)
    check_flag("output_final_state", output_final_state)
    if initial_state is not None:
        check_tensor_like("initial_state", initial_state, (x.shape[0], x.shape[2], order), x, "x")
    features = check_sequence_dropin(x, key_padding_mask, cu_seqlens)
    if cu_seqlens is not None and (initial_state is not None or output_final_state):
        raise ValueError("cu_seqlens with initial_state or output_final_state=True: lmu_memory starts every packed "
                         "sequence from a zero memory and returns no per-sequence states; pass initial_state=None "
                         "and output_final_state=False (or run the sequences as a batch to carry states)")
    tensors = [t for t in (x, initial_state) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=True, features=features))
    extra = {} if cu_seqlens is None else {"cu_seqlens": cu_seqlens}
    memory = implementation.fn(zero_padded(x, key_padding_mask), order=order, theta=theta,
                               initial_state=initial_state, **extra)
    return (memory, memory[:, -1]) if output_final_state else memory

"""LMU memory in parallel (LMUFormer's training form): causal FFT convolution with the impulse response."""

from __future__ import annotations

import torch

from attnzoo.ops.base_conv.common import causal_fft_conv, packed
from attnzoo.ops.lmu.legendre import impulse_response, legendre_discrete, power_sequence


@packed
def lmu_fft(x: torch.Tensor, *, order: int, theta: float, initial_state: torch.Tensor | None) -> torch.Tensor:
    """``m = H ∗ u`` by real FFT (LMUFormer eq. 26), plus ``Ā^(t+1) m_(-1)`` by doubling when a state is given.

    ``(B, N, C)`` -> ``(B, N, C, d)``; O(N log N · C · d) time, O(N · C · d) memory.
    """
    n = int(x.shape[1])  # a Python int under torch.jit.trace too (the cached response is keyed by it)
    kernel = impulse_response(order, theta, n).to(dtype=x.dtype, device=x.device)  # (N, d)
    memory = causal_fft_conv(x.unsqueeze(-1), kernel.unsqueeze(1))
    if initial_state is not None:
        a = legendre_discrete(order, theta)[0].to(dtype=x.dtype, device=x.device)
        carried = power_sequence(a, initial_state @ a.mT, n)  # (N, B, C, d): Ā^(t+1) m_(-1)
        memory = memory + carried.movedim(0, 1)
    return memory

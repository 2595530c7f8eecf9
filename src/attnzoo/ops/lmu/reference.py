"""LMU memory, the oracle: the explicit lower-triangular Toeplitz operator built from matrix powers, O(N² · d)."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size
from attnzoo.ops.lightning.sequences import same_sequence
from attnzoo.ops.lmu.legendre import legendre_discrete


def lmu_reference(x: torch.Tensor, *, order: int, theta: float, initial_state: torch.Tensor | None,
                  cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """``m_t = sum_{s<=t} Ā^(t-s) B̄ u_s + Ā^(t+1) m_(-1)`` per channel: ``(B, N, C)`` -> ``(B, N, C, d)``.

    The powers ``Ā^t`` are formed one product at a time (independent of the fast paths' doubling), applied to
    ``B̄`` (the impulse response ``H_t = Ā^t B̄``, ``(N + 1, d)``) and spread into the ``(N, N, d)`` kernel
    ``T[t, s] = H_(t-s) [s <= t]``, applied densely: O(N² · d) memory (refused up front beyond the machine's
    memory), O(N · d²) for the powers. With ``cu_seqlens`` (batch 1, no state) the kernel is zero between
    different packed sequences (each starts from a zero memory).
    """
    n = int(x.shape[1])
    check_dense_size("the LMU reference's Toeplitz kernel", (n, n, order), x.dtype, "impl='chunked' or 'fft'")
    a, b = (t.to(dtype=x.dtype, device=x.device) for t in legendre_discrete(order, theta))
    powers = [torch.eye(order, dtype=x.dtype, device=x.device)]
    for _ in range(n):
        powers.append(a @ powers[-1])
    powers = torch.stack(powers)  # (N + 1, d, d): Ā^0 .. Ā^N
    lag = torch.arange(n, device=x.device)[:, None] - torch.arange(n, device=x.device)[None, :]
    toeplitz = (powers @ b)[lag.clamp(min=0)] * (lag >= 0)[..., None].to(x.dtype)  # (N, N, d)
    if cu_seqlens is not None:
        toeplitz = toeplitz * same_sequence(cu_seqlens, n, x.device)[..., None].to(x.dtype)
    memory = torch.einsum("tsd,bsc->btcd", toeplitz, x)
    if initial_state is not None:
        memory = memory + torch.einsum("tij,bcj->btci", powers[1:], initial_state)
    return memory

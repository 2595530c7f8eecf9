"""LMU memory by chunks: exact lower-triangular GEMMs inside each chunk, the state carried across chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.base_conv.common import packed
from attnzoo.ops.lmu.legendre import impulse_response, legendre_discrete, power_sequence

CHUNK = 64


@packed
def lmu_chunked(x: torch.Tensor, *, order: int, theta: float, initial_state: torch.Tensor | None) -> torch.Tensor:
    """``(B, N, C)`` -> ``(B, N, C, d)`` in chunks of ``L = min(64, N)`` tokens::

        m[n, t] = sum_{s<=t} H_(t-s) u[n, s]  +  Ā^(t+1) S_n,      S_(n+1) = m[n, L-1]

    (``S_0`` the initial state): one ``(L·d, L)`` Toeplitz GEMM for all chunks, ``N / L`` state updates, one
    batched product for the carried part. O(N · L · C · d + N · C · d²) time. Unlike the FFT, no arithmetic
    path links a token to an earlier output, so causality holds exactly (zero gradients to the future).
    """
    batch, n, channels = (int(size) for size in x.shape)  # Python ints under torch.jit.trace too
    length = min(CHUNK, n)
    chunks = -(-n // length)
    response = impulse_response(order, theta, length)
    lag = torch.arange(length)[:, None] - torch.arange(length)[None, :]
    toeplitz = (response[lag.clamp(min=0)] * (lag >= 0)[..., None]).to(dtype=x.dtype, device=x.device)  # (L, L, d)
    a = legendre_discrete(order, theta)[0].to(dtype=x.dtype, device=x.device)
    powers = power_sequence(a, a.mT, length).mT  # (L, d, d): Ā^1 .. Ā^L (columns of Ā, then transposed)
    u = F.pad(x, (0, 0, 0, chunks * length - n)).reshape(batch, chunks, length, channels)
    local = torch.einsum("tsd,bnsc->bntcd", toeplitz, u)  # (B, chunks, L, C, d)
    state = x.new_zeros(batch, channels, order) if initial_state is None else initial_state
    starts = []
    for end in local[:, :, -1].unbind(1):  # chunk-local memory at each chunk's last token, (B, C, d)
        starts.append(state)
        state = state @ powers[-1].mT + end
    carried = torch.einsum("tij,bncj->bntci", powers, torch.stack(starts, dim=1))
    return (local + carried).reshape(batch, chunks * length, channels, order)[:, :n]

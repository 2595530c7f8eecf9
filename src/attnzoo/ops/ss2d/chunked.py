"""The chunked 2-D selective scan (see :mod:`attnzoo.ops.ss2d.functional`): every scan order cut into chunks of
``T ≈ √L`` pixels, all chunks scanned at once.

The recurrence ``h_t = a_t ⊙ h_(t-1) + b_t`` (``a_t = exp(Δ_t A)``, ``b_t = Δ_t B_t x_t``) splits at chunk
boundaries: a chunk's end state is its local end state (the scan from zero over the chunk) plus its start state
times the chunk's decay ``exp(A Σ_t Δ_t)``. So (1) every chunk is scanned from zero at once, ``T`` steps, keeping
only the end states; (2) the ``L / T`` start states are carried across the chunks; (3) every chunk is scanned again
from its true start state at once, ``T`` steps, giving ``y_t = C_t · h_t``. The chunk-level form of Mamba's parallel
scan (arXiv 2312.00752, Sec. 3.3.2) and of Mamba-2's chunked state passing (arXiv 2405.21060, Sec. 6), here for a
diagonal state with per-channel decay: ``2T + L/T ≈ 3√L`` sequential steps instead of ``L``, each on all chunks'
``(B, 4, L/T, E, N)`` states, the same ``O(B · 4 · L · E · N)`` arithmetic, no division and no exponential of a
growing sum (each factor is an ``a ∈ (0, 1]`` for ``A <= 0``). Equal to
:func:`~attnzoo.ops.ss2d.reference.ss2d_reference` forward and backward (``tests/test_contract.py``,
``tests/test_ss2d.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnzoo.ops.ss2d.cross import cross_merge
from attnzoo.ops.ss2d.functional import Sequences
from attnzoo.ops.ss2d.reference import direction_outputs


def chunk_size(length: int) -> int:
    """The power of two nearest at or above ``√length`` (at least 1)."""
    return 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(length)))))


def _chunked(t: torch.Tensor, chunks: int, size: int) -> torch.Tensor:
    """``(B, 4, L, S)`` zero-padded to ``chunks · size`` positions -> ``(B, 4, chunks, size, S)``."""
    pad = chunks * size - t.shape[2]
    return F.pad(t, (0, 0, 0, pad)).unflatten(2, (chunks, size))


def ss2d_chunked(seqs: Sequences, height: int, width: int) -> torch.Tensor:
    """The chunked scan (module docstring), then cross-merge."""
    b, k, length, e = seqs.u.shape
    size = chunk_size(length)
    chunks = -(-length // size)
    # padded positions have Δ = 0 (no decay, no input) and C = 0 (no output)
    delta, u, bs, cs = (_chunked(t, chunks, size) for t in (seqs.delta, seqs.u, seqs.B, seqs.C))
    A = seqs.A[:, None]                                                        # (4, 1, E, N)

    def step(h: torch.Tensor, t: int) -> torch.Tensor:
        d = delta[:, :, :, t, :, None]
        return torch.exp(d * A) * h + d * bs[:, :, :, t, None, :] * u[:, :, :, t, :, None]

    local = u.new_zeros(b, k, chunks, e, A.shape[-1])
    for t in range(size):
        local = step(local, t)
    decay = torch.exp(delta.sum(3)[..., None] * A)                             # (B, 4, chunks, E, N)
    carry, starts = torch.zeros_like(local[:, :, 0]), []
    for c in range(chunks):
        starts.append(carry)
        carry = decay[:, :, c] * carry + local[:, :, c]
    h, ys = torch.stack(starts, dim=2), []
    for t in range(size):
        h = step(h, t)
        ys.append((h * cs[:, :, :, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=3).flatten(2, 3)[:, :, :length]
    return cross_merge(direction_outputs(y, seqs), height, width)

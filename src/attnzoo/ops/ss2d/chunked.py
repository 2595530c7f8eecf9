"""The chunked parallel 2-D selective scan (see :mod:`attnzoo.ops.ss2d.functional`).

The recurrence ``h_t = a_t ⊙ h_(t-1) + b_t`` (``a_t = exp(Δ_t A)``, ``b_t = Δ_t B_t x_t``) is the scan of the
associative operator ``(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2)`` (Blelloch 1990; the parallel form of
Mamba's scan, arXiv 2312.00752 Sec. 3.3.2). Each scan order is cut into chunks of ``T ≈ √L`` pixels; inside every
chunk, all chunks at once, a Hillis-Steele inclusive scan (``log₂ T`` steps) gives each pixel's local state and
its decay since the chunk start; the chunks' end states are then carried across the ``L / T`` chunks, and each
pixel adds its decay times its chunk's incoming state. Every factor is a product of ``a ∈ (0, 1]`` (for
``A <= 0``): no division, no ``exp`` of a growing sum. ``O(log T + L / T)`` sequential steps, ``O(B · 4 · L · E · N)``
time and memory (a few times the reference's); equal to :func:`~attnzoo.ops.ss2d.reference.ss2d_reference` forward
and backward (``tests/test_contract.py``, ``tests/test_ss2d.py``).
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.ss2d.cross import cross_merge
from attnzoo.ops.ss2d.functional import Sequences
from attnzoo.ops.ss2d.reference import direction_outputs


def chunk_size(length: int) -> int:
    """The power of two nearest above ``√length`` (at least 1)."""
    return 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(length)))))


def inclusive_scan(a: torch.Tensor, b: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hillis-Steele scan of ``(a, b)`` along ``dim``: position ``t`` gets ``(a_t ··· a_0, h_t)`` with
    ``h_t = a_t h_(t-1) + b_t``, ``h_(-1) = 0``."""
    size, offset = a.shape[dim], 1
    while offset < size:
        a_prev = torch.cat([torch.ones_like(a.narrow(dim, 0, offset)), a.narrow(dim, 0, size - offset)], dim)
        b_prev = torch.cat([torch.zeros_like(b.narrow(dim, 0, offset)), b.narrow(dim, 0, size - offset)], dim)
        a, b = a * a_prev, b + a * b_prev
        offset *= 2
    return a, b


def ss2d_chunked(seqs: Sequences, height: int, width: int) -> torch.Tensor:
    """The chunked scan (module docstring), then cross-merge."""
    b, k, length, e = seqs.u.shape
    n, size = seqs.A.shape[-1], chunk_size(length)
    chunks = -(-length // size)
    pad = chunks * size - length
    delta = seqs.delta[..., None]
    decay = torch.exp(delta * seqs.A[:, None])                                      # (B, 4, L, E, N)
    drive = delta * seqs.B[:, :, :, None, :] * seqs.u[..., None]
    if pad:
        decay = torch.cat([decay, decay.new_ones(b, k, pad, e, n)], dim=2)
        drive = torch.cat([drive, drive.new_zeros(b, k, pad, e, n)], dim=2)
    decay, local = inclusive_scan(decay.view(b, k, chunks, size, e, n), drive.view(b, k, chunks, size, e, n), dim=3)
    carry, starts = local.new_zeros(b, k, e, n), []
    for c in range(chunks):
        starts.append(carry)
        carry = decay[:, :, c, -1] * carry + local[:, :, c, -1]
    h = local + decay * torch.stack(starts, dim=2)[:, :, :, None]
    h = h.view(b, k, chunks * size, e, n)[:, :, :length]
    y = (h * seqs.C[:, :, :, None, :]).sum(-1)
    return cross_merge(direction_outputs(y, seqs), height, width)

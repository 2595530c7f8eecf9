"""The sequential oracle of the 2-D selective scan: one recurrence step per pixel of each scan order, as the
official ``selective_scan_ref`` (state-spaces/mamba ``mamba_ssm/ops/selective_scan_interface.py``) loops over
``L``; see :mod:`attnzoo.ops.ss2d.functional`. Time ``O(B · 4 · L · E · N)`` in ``L`` sequential steps."""

from __future__ import annotations

import torch

from attnzoo.ops.ss2d.cross import cross_merge
from attnzoo.ops.ss2d.functional import Sequences


def direction_outputs(y: torch.Tensor, seqs: Sequences) -> torch.Tensor:
    """``C_t · h_t`` ``(B, 4, L, E)`` plus the skip ``D ⊙ x_t``."""
    return y if seqs.D is None else y + seqs.u * seqs.D[:, None, :]


def ss2d_reference(seqs: Sequences, height: int, width: int) -> torch.Tensor:
    """``h_t = exp(Δ_t A) ⊙ h_(t-1) + Δ_t B_t x_t``, ``y_t = C_t · h_t + D x_t`` step by step, then cross-merge."""
    b, k, length, e = seqs.u.shape
    h = seqs.u.new_zeros(b, k, e, seqs.A.shape[-1])
    ys = []
    for t in range(length):
        delta = seqs.delta[:, :, t, :, None]
        h = torch.exp(delta * seqs.A) * h + delta * seqs.B[:, :, t, None, :] * seqs.u[:, :, t, :, None]
        ys.append((h * seqs.C[:, :, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=2) if ys else seqs.u.new_zeros(b, k, 0, e)
    return cross_merge(direction_outputs(y, seqs), height, width)

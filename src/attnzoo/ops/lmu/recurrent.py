"""LMU memory run one step at a time (LMUFormer's ``forward_recurrent``): the decoding form, O(d²) per token."""

from __future__ import annotations

import torch

from attnzoo.ops.base_conv.common import packed
from attnzoo.ops.lmu.legendre import legendre_discrete


@packed
def lmu_recurrent(x: torch.Tensor, *, order: int, theta: float, initial_state: torch.Tensor | None) -> torch.Tensor:
    """``m_t = Ā m_(t-1) + B̄ u_t`` for t = 0 .. N-1 from ``m_(-1)`` (zeros when no state is given).

    ``(B, N, C)`` -> ``(B, N, C, d)``; O(N · C · d²) time, the state ``(B, C, d)`` carried between steps.
    """
    a, b = (t.to(dtype=x.dtype, device=x.device) for t in legendre_discrete(order, theta))
    state = x.new_zeros(*x.shape[::2], order) if initial_state is None else initial_state
    steps = []
    for u in x.unbind(1):
        state = state @ a.mT + u.unsqueeze(-1) * b
        steps.append(state)
    return torch.stack(steps, dim=1)

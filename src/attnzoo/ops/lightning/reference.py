"""Decayed linear attention, the oracle: ``O = ((Q Kᵀ) ⊙ M) V`` with ``M_ij = λ^{i-j}`` for ``i >= j``
(``lightning_attn/ops/torch/linear_attention.py::get_mask`` of the official code). O(N² (D + E)) time and O(N²)
memory. Signature and conventions: :mod:`attnzoo.ops.lightning`."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size
from attnzoo.ops.lightning.decay import decay_weights
from attnzoo.ops.lightning.sequences import same_sequence


def decayed_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: torch.Tensor | None,
                      initial_state: torch.Tensor | None, block_size: int,
                      output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The oracle: dense scores times the explicit ``(H, N, N)`` decay mask (``block_size`` is unused); with
    packed ``cu_seqlens`` (no states) the mask is also zero between tokens of different sequences."""
    n = query.shape[-2]
    check_dense_size("the N x N scores of the decayed linear attention reference", (*query.shape[:-1], n),
                     query.dtype, "impl='chunked' or 'recurrent'")
    t = torch.arange(n, device=query.device)
    mask = decay_weights(decay, t[:, None] - t[None, :], query)  # (H, N, N)
    if cu_seqlens is not None:
        mask = mask * same_sequence(cu_seqlens, n, query.device)
    out = ((query @ key.transpose(-1, -2)) * mask) @ value
    if initial_state is not None:
        out = out + (query * decay_weights(decay, t + 1, query)[..., None]) @ initial_state
    final = None
    if output_final_state:
        final = (key * decay_weights(decay, n - 1 - t, query)[..., None]).transpose(-1, -2) @ value
        if initial_state is not None:
            final = final + decay_weights(decay, t.new_tensor([n]), query)[..., None] * initial_state
    return out, final

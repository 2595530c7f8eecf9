"""Decayed linear attention one token at a time (decoding): O(D E) time and memory per token, independent of how
many tokens came before. Conventions: :mod:`attnzoo.ops.lightning`."""

from __future__ import annotations

import torch

from attnzoo.ops.lightning.sequences import packed_as_batch


def decayed_recurrent(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: torch.Tensor | None,
                      initial_state: torch.Tensor | None, block_size: int,
                      output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token at a time: ``S_t = λ S_{t-1} + k_t v_tᵀ``, ``o_t = S_tᵀ q_t`` (``block_size`` is unused); packed
    ``cu_seqlens`` (no states): all sequences stepped together as a zero-padded batch
    (:func:`~attnzoo.ops.lightning.sequences.packed_as_batch`), one step per token of the longest."""
    if cu_seqlens is not None:
        return packed_as_batch(decayed_recurrent, query, key, value, decay, cu_seqlens, block_size), None
    b, h, n, d = query.shape
    state = query.new_zeros(b, h, d, value.shape[-1]) if initial_state is None else initial_state
    lam = None if decay is None else torch.exp(-decay).reshape(h, 1, 1)
    outs = []
    for t in range(n):
        update = key[:, :, t, :, None] * value[:, :, t, None, :]
        state = update + (state if lam is None else lam * state)
        outs.append((query[:, :, t, None, :] @ state).squeeze(-2))
    out = torch.stack(outs, dim=2) if outs else value.new_zeros(value.shape)
    return out, state if output_final_state else None

"""Decayed linear attention, lightning attention's tiling (``lightning_attn2.py``): masked attention inside
blocks, a carried ``D x E`` state across them, every block at once with batched GEMMs and a loop-free two-level
decayed prefix sum over blocks. O(N (B + D) E) time. Conventions: :mod:`attnzoo.ops.lightning`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnzoo.ops.lightning.decay import decay_weights
from attnzoo.ops.lightning.sequences import packed_as_batch


def decayed_block_prefix(x: torch.Tensor, decay: torch.Tensor | None, step: int) -> torch.Tensor:
    """Inclusive decayed prefix sum over dim 2 of ``x`` ``(B, H, C, F)``: ``y_c = Σ_{c'<=c} β^{c-c'} x_{c'}``
    with ``β_h = exp(-decay_h · step)``.

    Loop-free in two levels: groups of ``g = ceil(sqrt(C))`` entries get their local prefix from a ``g x g``
    decay matrix, and each group's carry-in from a ``G x G`` one over the group totals (``G = ceil(C / g)``):
    O(C^1.5 F) work in three batched GEMMs instead of a loop of C steps or one O(C² F) matrix. Every weight is a
    power of ``β <= 1``, so nothing overflows. ``decay=None`` is the plain cumulative sum.
    """
    if decay is None:
        return x.cumsum(2)
    b, h, c, f = x.shape
    g = math.isqrt(c - 1) + 1 if c > 1 else 1
    groups = -(-c // g)
    xg = (F.pad(x, (0, 0, 0, groups * g - c)) if groups * g > c else x).reshape(b, h, groups, g, f)
    i = torch.arange(g, device=x.device)
    local = decay_weights(decay * step, i[:, None] - i[None, :], x)  # (H, g, g)
    y = local[:, None] @ xg  # (B, H, G, g, F) local inclusive prefix
    j = torch.arange(groups, device=x.device)
    across = decay_weights(decay * step * g, j[:, None] - j[None, :] - 1, x)  # strictly lower: carry-in
    carry = across @ y[:, :, :, -1]  # (B, H, G, F): decayed sum of earlier groups, at their last entry
    y = y + decay_weights(decay * step, i + 1, x)[:, None, :, None] * carry[:, :, :, None]
    return y.reshape(b, h, groups * g, f)[:, :, :c]


def decayed_chunked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: torch.Tensor | None,
                    initial_state: torch.Tensor | None, block_size: int,
                    output_final_state: bool, cu_seqlens: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning tiling: intra-block masked attention plus inter-block carried state, all blocks at once
    (packed ``cu_seqlens``, no states: the sequences as a zero-padded batch,
    :func:`~attnzoo.ops.lightning.sequences.packed_as_batch`).

    With blocks of ``B`` tokens, local positions ``a`` (query) and ``b`` (key), and ``F_c`` the state after
    block ``c`` (``F_{-1}`` the initial state)::

        o_intra = ((Q_c K_cᵀ) ⊙ λ^{a-b}[a >= b]) V_c
        o_inter = (Q_c ⊙ λ^{a+1}) F_{c-1}
        F_c     = λ^B F_{c-1} + (K_c ⊙ λ^{B-1-b})ᵀ V_c

    as in ``lightning_attn2.py`` (there the state is referenced to the next block's start, so its query decay is
    ``λ^a``; the two are equal). A last, partial block is zero-padded; its padded rows are dropped and the final
    state is taken at the last real token.
    """
    if cu_seqlens is not None:
        return packed_as_batch(decayed_chunked, query, key, value, decay, cu_seqlens, block_size), None
    b, h, n, d = query.shape
    e = value.shape[-1]
    blk = min(block_size, n)
    c = -(-n // blk)
    pad = c * blk - n
    qc, kc, vc = ((F.pad(t, (0, 0, 0, pad)) if pad else t).reshape(b, h, c, blk, t.shape[-1])
                  for t in (query, key, value))
    a = torch.arange(blk, device=query.device)
    intra = ((qc @ kc.transpose(-1, -2)) * decay_weights(decay, a[:, None] - a[None, :], query)[:, None]) @ vc
    k_decay = decay_weights(decay, blk - 1 - a, query)[:, None, :, None]  # (H, 1, B, 1)
    block_states = ((kc * k_decay).transpose(-1, -2) @ vc).reshape(b, h, c, d * e)
    start = query.new_zeros(b, h, 1, d * e) if initial_state is None else initial_state.reshape(b, h, 1, d * e)
    # states before each block: F_{c-1} = prefix over [F_{-1}, block 0, ..., block c-1]
    before = decayed_block_prefix(torch.cat([start, block_states[:, :, :-1]], dim=2), decay, blk)
    before = before.reshape(b, h, c, d, e)
    q_decay = decay_weights(decay, a + 1, query)[:, None, :, None]
    out = (intra + (qc * q_decay) @ before).reshape(b, h, c * blk, e)[:, :, :n]
    final = None
    if output_final_state:
        last = n - (c - 1) * blk  # real tokens in the last block
        r = torch.arange(last, device=query.device)
        k_last = kc[:, :, -1, :last] * decay_weights(decay, last - 1 - r, query)[..., None]
        final = (k_last.transpose(-1, -2) @ vc[:, :, -1, :last]
                 + decay_weights(decay, r.new_tensor([last]), query)[..., None] * before[:, :, -1])
    return out, final

"""Block-local attention, the fast path: reshape the sequence into blocks and run batched SDPA inside them.

The queries are the last ``Nq`` of the ``Nk`` key positions (bottom-right, as a decode step against a KV cache).
Keys before the block of the first query are seen by no query and are dropped; the first query's block is
completed in front with ``lead < S`` zero queries (their outputs dropped), so queries and keys cover the same
``n`` positions from a block boundary. The ``n // S`` full blocks become one SDPA call with the blocks folded
into the heads axis (a view, no copy), ``(B, H · n/S, S, D)``, causal (SDPA's own ``is_causal``, flash kernels)
or with the ``S x S`` prefix mask; a shorter last block is a second call. Grouped K/V heads are repeated to the
query's heads first (the folded layout has no head groups). Gradients: autograd through
:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa` (first order; differentiating twice raises ``NotSupportedError``).
Time ``O(n · S · D)``, memory ``O(n · D)`` plus SDPA's per-block scores: never an ``N x N`` matrix.
"""

from __future__ import annotations

import torch

from attnzoo.ops.block_local.pattern import BlockLocalPattern
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.softmax.sdpa import softmax_sdpa


def _attend_blocks(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockLocalPattern,
                   size: int, scale: float) -> torch.Tensor:
    """``(B, H, n, ·)`` with ``n`` a multiple of ``size`` (one block per ``size`` positions) -> ``(B, H, n, Dv)``."""
    b, h, n, _ = query.shape

    def fold(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, h * (n // size), size, t.shape[-1])

    if pattern.is_causal:
        out = softmax_sdpa(fold(query), fold(key), fold(value), is_causal=True, scale=scale)
    else:
        mask = pattern.block_mask(size, query.device)
        out = softmax_sdpa(fold(query), fold(key), fold(value), is_causal=False, scale=scale,
                           dropin=DropIn(attn_mask=mask))
    return out.reshape(b, h, n, -1)


def block_local_blocked(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                        pattern: BlockLocalPattern, scale: float, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, Hq, Nq, D)`` queries against ``(B, Hkv, Nk, D)`` keys -> ``(B, Hq, Nq, Dv)`` block by block (see the
    module docstring). Drop-in features: longer keys (``dropin.cross``) and grouped K/V heads (``dropin.gqa``)."""
    if dropin.gqa:
        key, value = (t.repeat_interleave(query.shape[1] // key.shape[1], dim=1) for t in (key, value))
    size = pattern.block_size
    nq, nk = query.shape[2], key.shape[2]
    start = (nk - nq) // size * size
    lead = nk - nq - start
    key, value = key[:, :, start:], value[:, :, start:]
    if lead:
        query = torch.cat([query.new_zeros(*query.shape[:2], lead, query.shape[-1]), query], dim=2)
    n = key.shape[2]
    full = n // size * size
    pieces = []
    if full:
        pieces.append(_attend_blocks(query[:, :, :full], key[:, :, :full], value[:, :, :full], pattern, size, scale))
    if full < n:
        pieces.append(_attend_blocks(query[:, :, full:], key[:, :, full:], value[:, :, full:], pattern, n - full,
                                     scale))
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
    return out[:, :, lead:]

"""MSA-Conv, the fast path: each window's keys and values gathered once from the flattened grid (one
``index_select`` with a precomputed table; a padding key reads an appended zero token), scores and output as
batched GEMMs ``(1 x D) @ (D x k²)`` and ``(1 x k²) @ (k² x Dv)`` per window, padding keys masked by an additive
``-inf``. Autograd differentiates it (the gathers' backward is a scatter-add). Measured (fp32, 2 shared CPU threads,
(B, H, X, Y, D) = (2, 4, 56, 56, 32), k = 7, one run after two warm-ups, ``time.perf_counter``): forward 345 ms
against 1241 ms for the unfold reference, forward + backward 1673 ms against 2660 ms."""

from __future__ import annotations

import torch

from attnzoo.ops.msa_conv.windows import ConvWindows, key_index


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B·H, N, D)`` tokens and an ``(L, k²)`` index into them plus one zero token -> ``(B·H, L, k², D)``."""
    padded = torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[-1])], dim=1)
    return padded.index_select(1, index.flatten()).unflatten(1, index.shape)


def msa_conv_gathered(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, windows: ConvWindows,
                      masked: bool, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, X', Y', Dv)``; see the module."""
    b, h, nx, ny, d = query.shape
    query_flat, key_flat, inside = key_index(windows, str(query.device))
    q = query.reshape(b * h, nx * ny, d).index_select(1, query_flat)[:, :, None, :]  # (B·H, L, 1, D)
    k = _gather(key.reshape(b * h, nx * ny, d), key_flat)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B·H, L, 1, k²)
    if masked:
        scores = scores.masked_fill(~inside[:, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, _gather(value.reshape(b * h, nx * ny, -1), key_flat))  # (B·H, L, 1, Dv)
    return out.reshape(b, h, *windows.out_shape, value.shape[-1])

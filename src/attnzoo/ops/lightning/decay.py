"""Per-head decay weights λ_h ** exponent, shared by the reference and chunked forms of decayed linear attention."""

from __future__ import annotations

import torch


def decay_weights(decay: torch.Tensor | None, exponent: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``λ_h ** exponent`` as ``(H, *exponent.shape)`` (zero where ``exponent < 0``); ``(1, ...)`` for ``None``.

    ``exponent`` is an integer tensor; negative entries mark excluded (future) pairs.
    """
    keep = exponent >= 0
    if decay is None:
        return keep.to(like.dtype).unsqueeze(0)
    powers = exponent.clamp(min=0).to(like.dtype)
    return torch.exp(-decay.reshape(-1, *(1,) * exponent.dim()) * powers) * keep

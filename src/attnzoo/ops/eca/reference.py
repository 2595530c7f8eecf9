"""ECA's oracle: the 1-D convolution over the channel axis written out as a ``C x C`` matrix (a Toeplitz band
of ``k`` taps, or a circulant for the circular form) applied to the pooled channel descriptor."""

from __future__ import annotations

import torch


def channel_conv_matrix(weight: torch.Tensor, channels: int, circular: bool = False) -> torch.Tensor:
    """``M`` ``(C, C)`` with ``(M z)_i = sum_t w_t z_{i + t - r}``, ``r = (k - 1) / 2``: the sum over taps ``t`` of
    ``w_t`` times the shift matrix whose row ``i`` has its one at column ``i + t - r``; that column is dropped
    where it falls outside ``0..C-1`` (zero padding, a band matrix) or taken modulo ``C`` (``circular``, a
    circulant). Differentiable in ``weight``."""
    k = weight.shape[0]
    index = torch.arange(channels, device=weight.device)
    cols = index[None, :] + torch.arange(k, device=weight.device)[:, None] - (k - 1) // 2  # (k, C): tap t of row i
    if circular:
        cols = cols % channels
    shifts = cols[:, :, None] == index[None, None, :]  # (k, C, C): row i of tap t reads column cols[t, i]
    return torch.einsum("t,tij->ij", weight, shifts.to(weight.dtype))


def eca_reference(x: torch.Tensor, weight: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """``x ⊙ σ(M · GAP(x))`` with ``M`` = :func:`channel_conv_matrix`: ``x`` ``(B, C, H, W)``, ``weight`` ``(k,)``.
    O(C² + CHW). A non-finite channel mean reaches every gate of its sample here (``0 · NaN`` in the dense product),
    only the ``k`` neighbouring ones through ``conv1d``."""
    z = x.mean(dim=(2, 3))  # (B, C): global average pooling
    gate = torch.sigmoid(z @ channel_conv_matrix(weight, x.shape[1], circular).transpose(0, 1))
    return x * gate[:, :, None, None]

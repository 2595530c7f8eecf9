"""ECA, efficient channel attention (Wang et al., ECA-Net, arXiv 1910.03151, paper 31)::

    z = GAP(x) ∈ R^C,        gate = σ(conv1d_k(z)),        out = x ⊙ gate        (gate broadcast over H, W)

a 1-D convolution of ``k`` taps, one input and one output channel, no bias, sliding along the channel axis of the
pooled descriptor (zero padding ``(k - 1) / 2``; ``circular=True`` pads circularly, timm's ``CecaModule``):
``k`` parameters, no dimensionality reduction. The adaptive kernel size is :func:`eca_kernel_size`, the paper's
``ψ(C) = |log2(C) / γ + b / γ|_odd``. Layout ``(B, C, H, W)`` in and out (the convention of the ``cnn`` family,
:mod:`attnzoo.ops.feature_maps`). Time O(CHW + Ck), memory O(CHW).

Implementations: ``conv1d`` (``F.conv1d`` on the ``(B, 1, C)`` descriptor, as the official ``eca_module.py``)
and ``reference`` (the convolution as an explicit ``C x C`` band / circulant matrix, the catalog's Toeplitz form).
Verified: the two agree forward and backward (the registry contract); the ψ table of the paper and the ``k``
parameter count; timm 1.0.31's ``EcaModule`` and ``CecaModule`` with copied weights (``tests/test_eca.py``).
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_weight
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_real

VARIANT_NAME = "efficient_channel_attention"


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """The paper's adaptive kernel size ``k = ψ(C) = |log2(C) / γ + b / γ|_odd`` as the ECA code computes it:
    ``t = int(|log2(C) + b| / γ)``, then ``t`` if odd, else ``t + 1``. With ``γ = 2, b = 1``: C = 64 -> 3,
    128 -> 5, 256 -> 5, 512 -> 5, 1024 -> 5, 2048 -> 7; small C gives 1 (C < 8). (timm's ``EcaModule`` then takes
    at least 3.)

    >>> tuple(eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048))
    (3, 5, 5, 5, 5, 7)
    """
    check_int("channels", channels)
    check_real("gamma", gamma)
    check_real("beta", beta, minimum=-math.inf)
    t = int(abs(math.log2(channels) + beta) / gamma)
    return t if t % 2 else t + 1


def efficient_channel_attention(x: torch.Tensor, weight: torch.Tensor, circular: bool = False,
                                impl: str = "auto") -> torch.Tensor:
    """ECA: ``x ⊙ σ(conv1d_k(GAP(x)))``. ``x`` ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    ``weight``: the ``(k,)`` taps (``nn.Conv1d(1, 1, k).weight.view(-1)``), ``k`` odd; ``circular``: pad the
    channel axis circularly instead of with zeros (then ``(k - 1) / 2 <= C``); ``impl``: ``"auto"``
    (``"conv1d"``), ``"conv1d"`` or ``"reference"``.

    >>> import torch
    >>> x = torch.randn(2, 16, 5, 7)
    >>> efficient_channel_attention(x, torch.tensor([0.2, 0.5, 0.3])).shape
    torch.Size([2, 16, 5, 7])
    """
    _, channels, _, _ = check_feature_map("x", x)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or weight.shape[0] % 2 == 0:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight has shape {shape}; expected (k,) with k odd (the taps of the channel convolution, "
                         "centred)")
    check_weight("weight", weight, tuple(weight.shape), x)
    check_flag("circular", circular)
    pad = (weight.shape[0] - 1) // 2
    if circular and pad > channels:
        raise ValueError(f"weight has {weight.shape[0]} taps; circular=True pads (k - 1) / 2 = {pad} channels on "
                         f"each side, expected at most C={channels}")
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([x, weight]))
    return implementation.fn(x, weight, circular)

"""MEDUSA's attention heads (Aboutalebi, Pavlova, Gunraj, Shafiee, Sabri, Alaref, Wong, "MEDUSA: Multi-scale
Encoder-Decoder Self-Attention Deep Neural Network Architecture for Medical Image Analysis", Frontiers in
Medicine 2022, arXiv 2110.06063; released as COVID-Net CXR-3 in ``lindawangg/COVID-Net``).

One shared attention body (a U-Net ending in a 1-channel sigmoid, :class:`attnzoo.layers.MedusaBody`) maps the
image to a saliency map ``S`` once; each head ``l`` of the backbone resizes ``S`` to its feature map's grid and
turns it into per-channel attention by a linear convolution, ``A_l = W_l ∗ resize(S) + b_l`` (``C_l`` output
channels, 7x7, "same" padding), applied as ``F_l ← F_l + F_l ⊙ A_l``. This op is one head: ``x`` ``(B, C, H,
W)``, ``saliency`` ``(B, Cs, Hs, Ws)`` (any grid; ``Cs = 1`` in the paper), ``weight`` ``(C, Cs, k, k)`` with an
odd ``k``, optional ``bias`` ``(C,)``. Implementations: ``conv`` (``F.interpolate`` bilinear, half-pixel
centres, no antialiasing: TF2's ``tf.image.resize``; then ``F.conv2d``) and ``reference`` (explicit
interpolation matrices and tap sums). Time O(k² · C · Cs · H · W).
Verified against the official ``model/resnet1.py`` (``set_attention`` / ``apply_attention``, commit b56ba63):
the head equation, its placement (after the stem's max pooling and after each of the first three stages) and the
body's layers (``model/build_model.py``, ``build_UNet2D_4L``), transcribed in ``tests/test_medusa.py``; the
TF code itself was not run (no TensorFlow here).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_optional_weight, check_weight
from attnzoo.registry import CallFacts, select_implementation

VARIANT_NAME = "medusa_attention"


def medusa_attention(x: torch.Tensor, saliency: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None = None, impl: str = "auto") -> torch.Tensor:
    """One MEDUSA head: ``x + x ⊙ (weight ∗ resize(saliency) + bias)`` -> ``(B, C, H, W)`` (see the module).

    >>> import torch
    >>> x, s = torch.randn(2, 8, 14, 14), torch.rand(2, 1, 56, 56)
    >>> out = medusa_attention(x, s, torch.zeros(8, 1, 7, 7))
    >>> bool(torch.equal(out, x))    # a zero head is the plain backbone
    True
    """
    b, c, _, _ = check_feature_map("x", x)
    check_feature_map("saliency", saliency)
    if saliency.shape[0] != b:
        raise ValueError(f"saliency has shape {tuple(saliency.shape)}; expected x's batch {b} (B, Cs, Hs, Ws)")
    check_weight("saliency", saliency, tuple(saliency.shape), x)
    cs = saliency.shape[1]
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.shape[-1] != weight.shape[-2]:
        raise ValueError(f"weight has shape {tuple(getattr(weight, 'shape', ()))}; expected (C, Cs, k, k) = "
                         f"({c}, {cs}, k, k)")
    k = weight.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"weight has kernel size {k}; expected an odd kernel size ('same' padding is centred)")
    check_weight("weight", weight, (c, cs, k, k), x)
    check_optional_weight("bias", bias, (c,), x)
    tensors = [t for t in (x, saliency, weight, bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors))
    return implementation.fn(x, saliency, weight, bias)

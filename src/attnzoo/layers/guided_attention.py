"""The multi-scale self-guided attention of Sinha & Dolz (IEEE JBHI 2020, arXiv 1906.02849, paper 23), as the
official ``DAF_stack`` of ``sinAshish/Multi-Scale-Attention`` (``src/models/my_stacked_danet.py`` and
``attention.py``, commit 96d76f2) builds it on top of its backbone: everything from the multi-scale features to
the refined features, without the backbone and the class heads.

Given ``S`` feature maps ``F_s`` ``(B, C, H, W)`` of one resolution (the backbone stages reduced to ``C``
channels and upsampled):

1. ``F_MS = fuse(cat(F_1 .. F_S))``: 3x3-BN-PReLU, 3x3-BN-PReLU, 1x1-BN-PReLU (``S·C -> C``).
2. Step 1, per scale: ``I_s = cat(F_s, F_MS)``; the step's semantic encoder-decoder (shared by the scales)
   gives a code ``E_s`` and a reconstruction ``Î_s`` of ``I_s``; ``A_s = conv1x1((PAM_s(I_s) + CAM_s(I_s)) ⊙
   conv3x3(Î_s))``, where ``PAM_s`` / ``CAM_s`` are 3x3-BN-PReLU (``2C -> C``), position / channel attention
   (:class:`PositionSelfAttention`, :class:`ChannelSelfAttention`, γ = 0 at initialisation), 3x3-BN-PReLU.
3. Step 2, the guided refinement: the same with new modules on ``cat(F_s, A_s ⊙ F_MS)``, giving ``R_s``.

The guided loss of the official ``main.py`` (:func:`guided_attention_loss`): ``0.25 · Σ_s MSE(E_s¹, E_s²) +
0.1 · Σ_{steps, s} MSE(I_s, Î_s)`` (the class terms are the user's). The computation is the official one;
the unused ``attention1..4`` / ``refine1..4`` modules of ``DAF_stack`` are not built, and the per-scale modules
are indexed by scale (``tests/official_guided_attention.py`` maps them to the official names). The grid must be
even in both axes and at least 4 (the encoder-decoder halves it twice and doubles it back; an odd size would come
back one pixel short).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.dual_attention import ChannelSelfAttention, PositionSelfAttention
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import LAYOUT
from attnzoo.validation import check_int


def _conv_bn(cin: int, cout: int, kernel: int, act: nn.Module) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), act]


class _AttentionBranch(nn.Module):
    """Official ``PAM_CAM_Layer``: 3x3-BN-PReLU (``2C -> C``), PAM or CAM, 3x3-BN-PReLU."""

    def __init__(self, dim: int, attention: nn.Module) -> None:
        super().__init__()
        self.attn = nn.Sequential(*_conv_bn(2 * dim, dim, 3, nn.PReLU()), attention,
                                  *_conv_bn(dim, dim, 3, nn.PReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


class _Encoder(nn.Module):
    """Official ``_EncoderBlock``: (3x3-BN-ReLU) x 2, 2x2 max pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(*_conv_bn(cin, cout, 3, nn.ReLU()), *_conv_bn(cout, cout, 3, nn.ReLU()),
                                    nn.MaxPool2d(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


class _Decoder(nn.Module):
    """Official ``_DecoderBlock``: (3x3-BN-ReLU) x 2, 2x2 transposed convolution of stride 2."""

    def __init__(self, cin: int, middle: int, cout: int) -> None:
        super().__init__()
        self.decode = nn.Sequential(*_conv_bn(cin, middle, 3, nn.ReLU()), *_conv_bn(middle, middle, 3, nn.ReLU()),
                                    nn.ConvTranspose2d(middle, cout, 2, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(x)


class _SemanticModule(nn.Module):
    """Official ``semanticModule``: two encoders (``c -> 2c -> 4c``, the grid halved twice) and two decoders back
    to ``c`` channels; returns the code (the second encoder's output) and the reconstruction."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.enc1 = _Encoder(channels, 2 * channels)
        self.enc2 = _Encoder(2 * channels, 4 * channels)
        self.dec2 = _Decoder(4 * channels, 2 * channels, 2 * channels)
        self.dec1 = _Decoder(2 * channels, channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc1 = self.enc1(x)
        enc2 = self.enc2(enc1)
        dec2 = F.interpolate(self.dec2(enc2), size=enc1.shape[2:], mode="bilinear", align_corners=False)
        return enc2, self.dec1(dec2)


class _GuidedStep(nn.Module):
    """One step: per scale a PAM and a CAM branch, a 3x3 convolution of the reconstruction and the 1x1 output
    convolution; one semantic module shared by the scales."""

    def __init__(self, dim: int, scales: int, reduction: int, impl: str) -> None:
        super().__init__()
        self.position = nn.ModuleList(_AttentionBranch(dim, PositionSelfAttention(dim, reduction, impl=impl))
                                      for _ in range(scales))
        self.channel = nn.ModuleList(_AttentionBranch(dim, ChannelSelfAttention(dim, impl=impl))
                                     for _ in range(scales))
        self.semantic = _SemanticModule(2 * dim)
        self.semantic_conv = nn.ModuleList(nn.Conv2d(2 * dim, dim, 3, padding=1) for _ in range(scales))
        self.out_conv = nn.ModuleList(nn.Conv2d(dim, dim, 1) for _ in range(scales))

    def forward(self, scale: int, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        code, reconstruction = self.semantic(inputs)
        attended = self.position[scale](inputs) + self.channel[scale](inputs)
        return self.out_conv[scale](attended * self.semantic_conv[scale](reconstruction)), code, reconstruction


@dataclass
class GuidedAttentionOutput:
    """What :class:`MultiScaleGuidedAttention` returns: the refined features ``R_s`` (one per scale), the step-1
    attention ``A_s``, the fused ``F_MS``, and per step (index 0, 1) the semantic modules' inputs, codes and
    reconstructions per scale (what :func:`guided_attention_loss` reads)."""

    refined: tuple[torch.Tensor, ...]
    attention: tuple[torch.Tensor, ...]
    fused: torch.Tensor
    inputs: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]
    codes: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]
    reconstructions: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]


class MultiScaleGuidedAttention(ShowsOptions, nn.Module):
    """Multi-scale self-guided attention (see the module docstring): ``scales`` feature maps ``(B, dim, H, W)``
    -> :class:`GuidedAttentionOutput` (``refined``: ``scales`` maps ``(B, dim, H, W)``). Official sizes:
    ``dim=64``, ``scales=4``, ``reduction=8`` (PAM's query/key channels ``dim // 8``).

    >>> import torch
    >>> layer = MultiScaleGuidedAttention(dim=16, scales=2)
    >>> out = layer([torch.randn(2, 16, 8, 6), torch.randn(2, 16, 8, 6)])
    >>> tuple(tuple(r.shape) for r in out.refined)
    ((2, 16, 8, 6), (2, 16, 8, 6))
    """

    def __init__(self, dim: int = 64, scales: int = 4, reduction: int = 8, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.scales = check_int("dim", dim), check_int("scales", scales)
        self.fuse = nn.Sequential(*_conv_bn(scales * dim, dim, 3, nn.PReLU()), *_conv_bn(dim, dim, 3, nn.PReLU()),
                                  *_conv_bn(dim, dim, 1, nn.PReLU()))
        self.steps = nn.ModuleList(_GuidedStep(dim, scales, reduction, impl) for _ in range(2))

    def forward(self, features: Sequence[torch.Tensor]) -> GuidedAttentionOutput:
        if isinstance(features, torch.Tensor) or not isinstance(features, Sequence) \
                or len(features) != self.scales:
            raise ValueError(f"features: expected a sequence of scales={self.scales} tensors (B, C={self.dim}, H, W), "
                             f"got {type(features).__name__}"
                             + (f" of length {len(features)}" if isinstance(features, Sequence) else ""))
        for s, f in enumerate(features):
            check_layer_input(self, f, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True, name=f"features[{s}]")
            if f.shape != features[0].shape:
                raise ValueError(f"features[{s}] has shape {tuple(f.shape)}; expected features[0]'s "
                                 f"{tuple(features[0].shape)} (one resolution for every scale)")
        h, w = features[0].shape[2:]
        if h % 2 or w % 2 or h < 4 or w < 4:
            raise ValueError(f"features have grid {h}x{w}; expected even sizes >= 4 (the semantic encoder-decoder "
                             "halves the grid twice and doubles it back)")
        fused = self.fuse(torch.cat(list(features), dim=1))
        guides = [fused] * self.scales
        inputs, codes, reconstructions, results = [], [], [], []
        for step in self.steps:
            step_inputs = [torch.cat((f, g), dim=1) for f, g in zip(features, guides)]
            outs = [step(s, inp) for s, inp in enumerate(step_inputs)]
            inputs.append(tuple(step_inputs))
            codes.append(tuple(o[1] for o in outs))
            reconstructions.append(tuple(o[2] for o in outs))
            results.append(tuple(o[0] for o in outs))
            guides = [a * fused for a in results[-1]]
        return GuidedAttentionOutput(refined=results[1], attention=results[0], fused=fused, inputs=tuple(inputs),
                                     codes=tuple(codes), reconstructions=tuple(reconstructions))


def guided_attention_loss(output: GuidedAttentionOutput, guided_weight: float = 0.25,
                          reconstruction_weight: float = 0.1) -> torch.Tensor:
    """The official ``main.py``'s attention terms: ``guided_weight · Σ_s MSE(E_s¹, E_s²) + reconstruction_weight
    · Σ_{step, s} MSE(I_s, Î_s)`` (add the cross-entropy of each prediction yourself)."""
    guided = sum(F.mse_loss(a, b) for a, b in zip(*output.codes))
    reconstruction = sum(F.mse_loss(i, r) for step_in, step_rec in zip(output.inputs, output.reconstructions)
                         for i, r in zip(step_in, step_rec))
    return guided_weight * guided + reconstruction_weight * reconstruction

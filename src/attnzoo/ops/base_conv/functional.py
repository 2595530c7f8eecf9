"""BaseConv (arXiv 2312.04927, Zoology, ``zoology/mixers/base_conv.py``): the gated-convolution baseline::

    y = act(k ∗ x + c) ⊙ act(x Wᵀ + b) + x,        (k ∗ x)[t] = sum_{s=0}^{t} k[s] ⊙ x[t - s]

a causal depthwise convolution with a per-channel filter ``k`` ``(C, K)`` (optional bias ``c``) gating a linear
projection ``W`` ``(C, C)`` / ``b`` ``(C,)``, plus the residual ``x``; ``act`` is SiLU when ``use_act`` (Zoology's
``use_act``), else the identity. Layout ``(B, N, C)``. Implementations of the convolution: ``fft`` (real FFT,
O(N log N · C), the long-convolution path), ``direct`` (grouped ``conv1d``, O(N · K · C), the short-convolution
path) and ``reference`` (the tap sum, O(N · K · C)). ``auto`` takes ``direct``, which is exactly causal; the
FFT is causal only up to roundoff (~1e-16 relative leaks from later tokens), so ask for it by name for long
filters (the layer does). Forward+backward at N = 4096, C = 64 on 2 CPU threads: a 4096-tap filter takes 15 ms
by FFT and 577 ms by ``direct``; a 3-tap filter 4.5 ms ``direct``, 3.4 ms ``reference``, 12 ms FFT. The
reference keeps every shifted copy for the backward pass, O(N · K · C) memory: an oracle for short inputs.
Verified against Zoology's ``base_conv.py`` and ``convolution.py`` (``ShortConvolution``: depthwise ``Conv1d``
with bias, left-truncated; ``LongConvolution`` / ``fft_conv``: FFT convolution plus ``u``, i.e. a filter whose
tap 0 carries an extra 1, no bias). Drop-in inputs (conventions of :mod:`attnzoo.ops.dropin`, every implementation): ``key_padding_mask`` ``(B, N)``,
``True`` = padding: only the convolution sees a padded token's ``x`` as zero (it reaches no later token through
``k ∗ x``, and the lags still count it as one step); the gate ``act(x Wᵀ + b)`` and the residual at a padded
position use its own ``x`` as before, so its output is still computed: ``y = act(k ∗ x' + c) ⊙ act(x Wᵀ + b) + x``
with ``x'`` the input with padded tokens zeroed. ``cu_seqlens`` ``(S + 1,)``, batch 1: the convolution of each
packed sequence starts from a zero history (taps do not cross sequence starts); the gate and residual are per
token anyway.
One
difference: Zoology's ``fft_conv`` transforms at length 2N, so a filter longer than N wraps around and leaks
the future; here taps beyond N are dropped, which keeps the op causal for every filter length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.base_conv.common import (
    SEQUENCE_LAYOUT,
    check_sequence,
    check_sequence_dropin,
    zero_padded,
)
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_tensor_like

VARIANT_NAME = "base_conv"
LAYOUT = SEQUENCE_LAYOUT


def base_conv(x: torch.Tensor, kernel: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor | None = None,
              conv_bias: torch.Tensor | None = None, use_act: bool = False, impl: str = "auto", *,
              key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """BaseConv token mixer. ``x`` ``(B, N, C)`` -> ``(B, N, C)``.

    ``kernel``: ``(C, K)`` causal filter, any ``K >= 1`` (taps ``>= N`` are unused); ``proj_weight`` ``(C, C)``,
    ``proj_bias`` / ``conv_bias`` ``(C,)`` or ``None``; ``impl``: ``"auto"`` (``"direct"``), ``"fft"``,
    ``"direct"`` or ``"reference"``. Time O(N log N · C + N · C²) with the FFT, O(N · K · C + N · C²) otherwise. ``key_padding_mask`` ``(B, N)`` (``True`` = padding: that token's ``x`` enters the convolution as
    zero; its gate and residual still use it) and ``cu_seqlens`` ``(S + 1,)`` (packed sequences of a batch of
    one, each convolved from a zero history): see the module docstring.
    """
    check_sequence("x", x)
    channels = x.shape[2]
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2 or kernel.shape[0] != channels \
            or kernel.shape[1] == 0:
        shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
        raise ValueError(f"kernel has shape {shape}; expected (C, K) = ({channels}, K) with K >= 1")
    check_tensor_like("kernel", kernel, tuple(kernel.shape), x, "x")
    check_tensor_like("proj_weight", proj_weight, (channels, channels), x, "x")
    for name, bias in (("proj_bias", proj_bias), ("conv_bias", conv_bias)):
        if bias is not None:
            check_tensor_like(name, bias, (channels,), x, "x")
    check_flag("use_act", use_act)
    tensors = [t for t in (x, kernel, proj_weight, proj_bias, conv_bias) if t is not None]
    features = check_sequence_dropin(x, key_padding_mask, cu_seqlens)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, causal=True, features=features))
    extra = {} if cu_seqlens is None else {"cu_seqlens": cu_seqlens}
    conv = implementation.fn(zero_padded(x, key_padding_mask), kernel, **extra)
    if conv_bias is not None:
        conv = conv + conv_bias
    proj = F.linear(x, proj_weight, proj_bias)
    if use_act:
        conv, proj = F.silu(conv), F.silu(proj)
    return conv * proj + x

"""HyperZ·Z·W's context-dependent convolution (Harvie Zhang, "HyperZ·Z·W Operator Connects Slow-Fast Networks for
Full Context Interaction", arXiv 2401.17948; official code ``hyperevolnet/Terminator``, commit 458c8c5,
``models/modules/hyperzzw.py``, ``local_conv.py``, ``magnet.py``, ``slow_net.py``).

A slow network (a coordinate MLP, :class:`attnzoo.layers.MAGNet`) generates a hyper-kernel ``W`` over the kernel
coordinates; the hidden activations ``Z`` make it context-dependent (``Ŵ``: the local slow network multiplies its
hidden units by a transform of ``Z`` pooled to the kernel's size), and ``Z`` is then convolved with ``Ŵ``
depthwise: ``out[b, c] = Ŵ[b, c] ⋆ Z[b, c]`` (cross-correlation, zero padding ``(k − 1) / 2``). This op is that
convolution for ``x`` ``(B, C, H, W)`` and ``kernel`` ``(B, C, k, k)``, one depthwise kernel per sample and
channel, ``k`` odd (the official code averages the context over the batch and passes one ``(C, 1, k, k)``
kernel: expand it to ``(B, C, k, k)``). Implementations: ``conv`` (one grouped ``F.conv2d``, ``B · C`` groups),
``fft`` (real 2-D FFTs, for kernels as large as the input: O(log) per pixel whatever ``k``; exact up to
round-off) and ``reference`` (the explicit tap sum). ``auto`` takes ``conv`` for ``k <= 15`` and ``fft`` above.
Time O(k² · C · H · W) per sample (``conv``, ``reference``), O(C · (H + k)(W + k) log) (``fft``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import check_feature_map, check_weight
from attnzoo.registry import CallFacts, select_implementation

VARIANT_NAME = "hyperzzw_conv"
FFT_FROM_KERNEL = 17
"""``auto`` picks the FFT from this kernel size up. Measured (forward + backward, 2 threads, a loaded 2-core AMD
EPYC, so only roughly): at (2, 36, 32, 32) the FFT took 14-45 ms whatever ``k`` and the grouped convolution 130-530
ms from k = 15 up, with the two within noise of each other at k = 7-11; below 17 ``auto`` keeps the exactly local
convolution."""


def hyperzzw_conv(x: torch.Tensor, kernel: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """Context-dependent depthwise convolution ``(B, C, H, W)`` -> ``(B, C, H, W)`` with a per-sample kernel
    ``(B, C, k, k)``, ``k`` odd; ``impl``: ``"auto"``, ``"conv"``, ``"fft"`` or ``"reference"``.

    >>> import torch
    >>> x = torch.randn(2, 3, 9, 11)
    >>> delta = torch.zeros(2, 3, 5, 5)
    >>> delta[:, :, 2, 2] = 1.0                      # the identity kernel
    >>> torch.allclose(hyperzzw_conv(x, delta), x)
    True
    """
    b, c, _, _ = check_feature_map("x", x)
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 4 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"kernel has shape {tuple(getattr(kernel, 'shape', ()))}; expected (B, C, k, k) = "
                         f"({b}, {c}, k, k)")
    k = kernel.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"kernel has kernel size {k}; expected an odd kernel size (centred zero padding)")
    check_weight("kernel", kernel, (b, c, k, k), x)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([x, kernel], length=k))
    if b == 0:  # no groups to convolve: the empty result, still connected to both inputs
        return x + kernel.sum() * 0
    return implementation.fn(x, kernel)

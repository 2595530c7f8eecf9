"""Pieces shared by the causal-convolution ops (BaseConv, LMU memory): input checks and causal FFT convolution."""

from __future__ import annotations

import torch

from attnzoo.registry import FLOAT_DTYPES

SEQUENCE_LAYOUT = "(B, N, C)"


def check_sequence(name: str, x: torch.Tensor) -> None:
    """``x`` must be a 3-D ``(B, N, C)`` floating tensor with at least one token and one channel."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} has shape {tuple(x.shape)} ({x.dim()}-D); expected 3-D {SEQUENCE_LAYOUT}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}.dtype={x.dtype}; expected a floating dtype "
                        f"({', '.join(sorted(str(d) for d in FLOAT_DTYPES))})")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected at least one token (N) and one channel (C) "
                         f"in {SEQUENCE_LAYOUT}")


def fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n`` (sizes that pocketFFT / cuFFT transform fastest)."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best


def causal_fft_conv(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y[:, t] = sum_{s=0}^{t} kernel[s] * signal[:, t - s]`` for ``t < N``, by real FFT in O(N log N).

    ``signal`` is ``(B, N, *S)`` (time on dim 1), ``kernel`` ``(K, *S')`` (time on dim 0) with ``S`` and ``S'``
    broadcastable; taps ``s >= N`` cannot reach any output and are dropped. The transform length is a fast size
    ``>= N + K - 1``, so the circular convolution never wraps: causal in exact arithmetic, while in floating
    point every output carries round-off (about 1e-16 relative in float64) from every position, future ones
    included. An empty batch gives an empty result (MKL's FFT refuses zero-size transforms). Sizes are read as
    Python ints, so ``torch.jit.trace`` records the transform length of the traced shape.
    """
    if signal.shape[0] == 0:
        return causal_fft_conv(signal.new_zeros(1, *signal.shape[1:]), kernel)[:0]
    n = int(signal.shape[1])
    kernel = kernel[:n]
    size = fft_size(n + int(kernel.shape[0]) - 1)
    spectrum = torch.fft.rfft(signal, n=size, dim=1) * torch.fft.rfft(kernel, n=size, dim=0)
    return torch.fft.irfft(spectrum, n=size, dim=1)[:, :n]

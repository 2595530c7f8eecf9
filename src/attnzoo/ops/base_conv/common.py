"""Pieces shared by the causal-convolution ops (BaseConv, LMU memory): input checks, causal FFT convolution and
their drop-in features (key padding, packed sequences; conventions of :mod:`attnzoo.ops.dropin`).

- ``key_padding_mask`` ``(B, N)`` boolean, ``True`` = padding: :func:`zero_padded` replaces a padded token's
  input by zero (``torch.where``, so non-finite padding does not leak) before the causal operator, so it adds
  nothing to any convolution or memory. Positions are kept: a padded token still counts as one step (of the
  filter's lags, of the memory's decay), and an output is still computed at it.
- ``cu_seqlens`` ``(S + 1,)``, batch 1: every packed sequence starts from a zero history. The references mask
  their dense operators by sequence; the fast forms run :func:`packed`, which uses
  :func:`attnzoo.ops.lightning.sequences.packed_as_batch` (a zero-padded batch of the ``S`` sequences, run once,
  gathered back; exact for causal operators) through a ``(B, N, C)`` adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from attnzoo.ops.dropin import check_cu_seqlens, check_key_padding
from attnzoo.ops.lightning.sequences import packed_as_batch
from attnzoo.registry import FLOAT_DTYPES

SEQUENCE_LAYOUT = "(B, N, C)"
SEQUENCE_DROP_IN = frozenset({"key_padding", "varlen"})
"""The drop-in features every implementation of BaseConv and the LMU memory runs: key padding, packed sequences."""


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


def check_sequence_dropin(x: torch.Tensor, key_padding_mask: torch.Tensor | None,
                          cu_seqlens: torch.Tensor | None) -> frozenset[str]:
    """Validate the drop-in inputs of a ``(B, N, C)`` op; returns the :data:`attnzoo.registry.FEATURES` used."""
    b, n = x.shape[:2]
    features = set()
    if key_padding_mask is not None:
        check_key_padding(key_padding_mask, b, n)
        features.add("key_padding")
    if cu_seqlens is not None:
        check_cu_seqlens(cu_seqlens, b, n, n)
        features.add("varlen")
    for name, t in (("key_padding_mask", key_padding_mask), ("cu_seqlens", cu_seqlens)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device}; expected the device of x, {x.device}")
    return frozenset(features)


def zero_padded(x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` ``(B, N, C)`` with the tokens of ``key_padding_mask`` (``True`` = padding) set to zero."""
    return x if key_padding_mask is None else torch.where(key_padding_mask[..., None], 0, x)


def per_sequence(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
    """``fn`` (a causal ``(S, L, C) -> (S, L, *F)`` operator) on each packed sequence of ``x`` ``(1, N, C)``
    from a zero history: :func:`~attnzoo.ops.lightning.sequences.packed_as_batch` with ``x`` as its
    ``(1, 1, N, C)`` query (key and value unused). Returns ``(1, N, *F)``."""
    trailing: list[tuple[int, ...]] = []

    def form(query: torch.Tensor, *_: object) -> tuple[torch.Tensor, None]:  # (S, 1, L, C) -> (S, 1, L, F)
        out = fn(query[:, 0])
        trailing.append(tuple(out.shape[2:]))
        return out.reshape(*out.shape[:2], -1)[:, None], None

    tokens = x[:, None]
    out = packed_as_batch(form, tokens, tokens, tokens, None, cu_seqlens, 0)  # (1, 1, N, F)
    return out[:, 0].reshape(1, x.shape[1], *trailing[0])


def packed(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``fn(x, *args, **kwargs)`` with a ``cu_seqlens=None`` keyword: given, ``fn`` runs on each packed sequence
    (:func:`per_sequence`); ``fn`` must be causal and start from a zero history."""
    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, *args: object, cu_seqlens: torch.Tensor | None = None,
                **kwargs: object) -> torch.Tensor:
        if cu_seqlens is None:
            return fn(x, *args, **kwargs)
        return per_sequence(lambda seqs: fn(seqs, *args, **kwargs), x, cu_seqlens)

    return wrapper

"""The GPTQ Hessian ``H = (2 / n) Σ_t r_t x_t x_tᵀ`` of a linear layer's inputs, accumulated batch by batch.

``x_t`` are the input rows (tokens) of the layer, ``n`` the number of calibration *sequences* seen (a 2-D input
counts as one), ``r_t`` optional token weights: ``None`` for GPTQ (Frantar et al., arXiv 2210.17323), RSQ's
importance (Sung et al., arXiv 2503.01820) otherwise, normalised per sequence to mean 1 over the tokens whose
weight is not masked out. A weight of 0 drops a token (padding).

Transcribed from the official ``GPTQ.add_batch`` (IST-DASLab/gptq ``gptq.py`` at 9f2abd3): ``H ← H · n / (n + b)``,
``n ← n + b``, ``x ← √(2 / n) · x``, ``H ← H + x xᵀ``, in that order and in float32, so that ``H`` is bit for bit
the official one (tested); RSQ's ``add_batch`` (ylsung/rsq ``fake_quant/gptq_utils.py``) then multiplies the
scaled ``x`` by ``√r̃_t`` with ``r̃ = r / Σr · T``. Here ``r̃ = r · (T / Σr)`` — the same number in exact
arithmetic, and exactly 1 for uniform weights, so that uniform importance gives GPTQ's Hessian bit for bit.
"""

from __future__ import annotations

import math

import torch

from attnzoo.quant.base import check_float_input


def normalize_token_weights(weights: torch.Tensor) -> torch.Tensor:
    """``r · (T / Σ r)`` per sequence (row of ``weights (B, T)``), ``T`` the number of non-zero weights."""
    if weights.dim() != 2:
        raise ValueError(f"token weights have shape {tuple(weights.shape)}; expected (batch, tokens)")
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError("token weights must be finite and non-negative")
    total = weights.sum(dim=1, keepdim=True)
    if bool((total == 0).any()):
        raise ValueError("a sequence has all its token weights 0: it would contribute nothing")
    count = (weights != 0).sum(dim=1, keepdim=True).to(weights.dtype)
    return weights * (count / total)


class HessianAccumulator:
    """Accumulates ``H`` for a layer with ``columns`` inputs (see the module docstring)."""

    def __init__(self, columns: int, dtype: torch.dtype = torch.float32) -> None:
        self.hessian = torch.zeros(columns, columns, dtype=dtype)
        self.samples = 0

    def add(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add a batch of inputs ``x`` ``(B, T, C)`` (or ``(T, C)``: one sequence) with optional token weights
        ``(B, T)`` (normalised here, :func:`normalize_token_weights`)."""
        check_float_input(x, "layer input")
        if x.dim() == 2:
            x = x.unsqueeze(0)
            weights = None if weights is None else weights.reshape(1, -1)
        if x.dim() != 3 or x.shape[-1] != self.hessian.shape[0]:
            raise ValueError(f"layer input has shape {tuple(x.shape)}; expected (batch, tokens, "
                             f"{self.hessian.shape[0]}) or (tokens, {self.hessian.shape[0]})")
        if weights is not None and tuple(weights.shape) != tuple(x.shape[:2]):
            raise ValueError(f"token weights have shape {tuple(weights.shape)}; the layer input {tuple(x.shape)} "
                             f"needs {tuple(x.shape[:2])}")
        batch = x.shape[0]
        rows = x.reshape(-1, x.shape[-1]).t()
        self.hessian *= self.samples / (self.samples + batch)
        self.samples += batch
        rows = math.sqrt(2 / self.samples) * rows.to(self.hessian.dtype)
        if weights is not None:
            rows = rows * normalize_token_weights(weights.to(self.hessian.dtype)).reshape(1, -1) ** 0.5
        self.hessian += rows.matmul(rows.t())

"""Straight-through estimators: the forward value is the quantized tensor exactly, the backward treats
quantisation as the identity.

- ``"identity"``: ``∂x̂/∂x = 1`` everywhere (BitNet's ``x + sg(q(x) − x)``, arXiv 2402.17764 / the authors'
  ``round_clamp``): weights keep learning even when clipped.
- ``"clipped"``: ``∂x̂/∂x = 1`` where ``x`` is not clipped and 0 where it is, each format's reference convention:
  for the integer grids where the rounded code lies in ``[code_min, code_max]`` (the gradient of
  ``torch.fake_quantize_per_tensor_affine``, tested equal, and of the Qualcomm ``round_ste`` + clamp), for the
  floating-point grid inside ``[−maxval, maxval]`` (LLM-FP4 clamps before rounding).

The forward is written ``x̂ + (x − sg(x))`` rather than ``x + sg(x̂ − x)``, so it equals ``x̂`` bit for bit.
Parameters are not learned (no gradient to the scale, as in min-max PTQ / BitNet); LSQ-style learned scales are
an extension point (a quantizer whose parameters are ``nn.Parameter``).
"""

from __future__ import annotations

from typing import Literal

import torch

from attnzoo.quant.base import QParams, Quantizer

STE = Literal["identity", "clipped"]
STES: tuple[STE, ...] = ("identity", "clipped")


def check_ste(ste: str) -> STE:
    if ste not in STES:
        raise ValueError(f"ste={ste!r}: expected one of {STES}")
    return ste  # type: ignore[return-value]


def fake_quantize(x: torch.Tensor, quantizer: Quantizer, params: QParams | None = None, *, ste: STE = "identity",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``quantizer.quantize(x, params)`` with a straight-through gradient to ``x`` (``params=None``: fitted to
    ``x``, without gradient)."""
    check_ste(ste)
    flat = x.detach()
    params = quantizer.fit(flat) if params is None else params
    x_hat = quantizer.quantize(flat, params, generator=generator)
    if not x.requires_grad:
        return x_hat
    passthrough = x - flat
    if ste == "clipped":
        passthrough = passthrough * quantizer.passes_gradient(flat, params)
    return x_hat + passthrough

"""The clipped softmax of Bondarenko et al., "Quantizable Transformers: Removing Outliers by Helping Attention
Heads Do Nothing" (NeurIPS 2023, arXiv 2306.12929), eq. 4.1:

    clipped_softmax(x; ζ, γ) = clip((ζ − γ) · softmax(x) + γ, 0, 1),   ζ ≥ 1, γ ≤ 0 (the stretch factors).

With γ < 0 a probability below ``−γ / (ζ − γ)`` becomes exactly 0 (and has zero gradient), with ζ > 1 one above
``(1 − γ) / (ζ − γ)`` exactly 1, so that a head can attend to nothing, or to one token only, with finite logits;
γ = 0, ζ = 1 is the softmax itself. The paper's alternative parametrisation is γ = −α / T for a sequence of T
tokens (:func:`gamma_from_alpha`; the official code, ``--alpha 12``, uses ``max_seq_length`` for T).

Verified against the official code (Qualcomm-AI-research/outlier-free-transformers,
``transformers_language/models/softmax.py`` ``clipped_softmax``, commit 1e59744): the same expression, with
``eta`` for ζ; ``tests/test_clipped_softmax.py`` transcribes it and compares.
"""

from __future__ import annotations

import math

import torch

from attnzoo.validation import ArgumentTypeError, is_real


def check_stretch(gamma: float, zeta: float) -> tuple[float, float]:
    """``gamma`` (γ) and ``zeta`` (ζ): finite real numbers with γ ≤ 0 ≤ 1 ≤ ζ (so γ < ζ), the paper's stretch
    factors. A positive γ would give every masked or padded key the weight γ, a ζ below 1 would cap every weight
    below 1; both are refused. Returns them as floats."""
    for name, value in (("gamma", gamma), ("zeta", zeta)):
        if not is_real(value):
            raise ArgumentTypeError(f"{name}={value!r}: expected a finite real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r}: expected a finite real number")
    if gamma >= zeta:
        raise ValueError(f"gamma={gamma!r}, zeta={zeta!r}: expected gamma < zeta (the clipped softmax stretches "
                         "the softmax to [gamma, zeta] before clipping to [0, 1])")
    if gamma > 0:
        raise ValueError(f"gamma={gamma!r}: expected a finite real number <= 0 (the lower stretch factor; a positive "
                         "gamma would give masked and padded keys the weight gamma)")
    if zeta < 1:
        raise ValueError(f"zeta={zeta!r}: expected a finite real number >= 1 (the upper stretch factor)")
    return float(gamma), float(zeta)


def gamma_from_alpha(alpha: float, length: int) -> float:
    """γ = −α / T, the paper's parametrisation of the lower stretch factor by ``alpha`` (α ≥ 0) for ``length``
    (T ≥ 1) tokens: the probabilities below ``α / (T (ζ + α / T))`` are clipped to 0."""
    if not is_real(alpha):
        raise ArgumentTypeError(f"alpha={alpha!r}: expected a finite real number >= 0, got {type(alpha).__name__}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha={alpha!r}: expected a finite real number >= 0")
    return -float(alpha) / length


def stretch(probs: torch.Tensor, gamma: float, zeta: float) -> torch.Tensor:
    """``(ζ − γ) · probs + γ``, before the clip (one expression, shared by the forward and the hand-written
    backward, so that both clip the same entries)."""
    return probs * (zeta - gamma) + gamma


def clipped_softmax(scores: torch.Tensor, gamma: float = -0.025, zeta: float = 1.0, dim: int = -1) -> torch.Tensor:
    """``clip((ζ − γ) · softmax(scores, dim) + γ, 0, 1)``; the defaults are the paper's BERT setting
    (``clipped(-.025:1)``). Any shape; O(numel)."""
    gamma, zeta = check_stretch(gamma, zeta)
    return stretch(torch.softmax(scores, dim=dim), gamma, zeta).clamp(0, 1)

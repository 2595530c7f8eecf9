"""Activation outliers and W8A8 post-training quantisation, the evaluation protocol of Bondarenko et al.,
"Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing" (arXiv 2306.12929, Sec. 5).

- :class:`FFNOutlierProbe`: forward hooks on every block's FFN (``Block.mlp``) recording, per sequence, the
  ∞-norm and the kurtosis of its output flattened over tokens and channels, averaged over the sequences seen;
  reported as the max ∞-norm over layers and the average / max kurtosis over layers — the official
  ``validate_clm.py`` / ``validate_mlm.py`` statistics (``x.view(B, -1)``, ``x.norm(dim=1, p=inf)``,
  ``transformers_language/utils.py`` ``kurtosis``; Qualcomm-AI-research/outlier-free-transformers, commit
  1e59744), there taken on ``fc2`` / ``output.dense``, here on the FFN's output.
- :func:`quantize_w8a8`: fake quantisation of a copy of the model. Weights of every ``nn.Linear`` (but the skipped
  ones, e.g. the LM head: the official ``fp32_head`` setup) are quantised per tensor, symmetric; the activations
  entering and leaving every such ``nn.Linear`` and leaving every block (the residual stream) per tensor,
  asymmetric uniform affine, with ranges from running min-max calibration (momentum 0.9, as the official
  ``RunningMinMaxEstimator``) on forward passes with the weights quantised and the activations in float, then
  frozen. Departures from the official setup, stated: weight ranges are min-max (the official uses an MSE grid
  search), no percentile clipping, and the quantisers sit at the linear layers' and blocks' boundaries, not
  after every op (softmax, LayerNorm, GELU inputs stay in float). Built on :mod:`attnzoo.quant` (the one
  implementation of uniform affine quantisation): a quantised linear layer whose weight is tied to an embedding
  (the LM head when it is not skipped) quantises only its own use of the weight; before the toolkit, the
  in-place weight copy quantised the tied embedding table too.

Uniform affine quantisation with ``b`` bits, scale ``Δ = (max − min) / (2^b − 1)`` and zero point
``z = round(−min / Δ)``: ``x̂ = Δ · (clamp(round(x / Δ) + z, 0, 2^b − 1) − z)``; inside the range
``|x̂ − x| ≤ Δ / 2``.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from torch import nn

from attnzoo.models.block import Block
from attnzoo.quant import (
    ActivationSpec,
    QParams,
    Recipe,
    Rule,
    RunningMinMaxObserver,
    UniformQuantizer,
    quantizable_layers,
    quantize,
)


def kurtosis(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Kurtosis of each row of ``x`` ``(S, M)``: ``E[(x − μ)^4] / (σ^4 + eps)`` with the unbiased σ (the official
    ``kurtosis``, 3 for a Gaussian); ``(S,)``."""
    mu = x.mean(dim=1, keepdim=True)
    return ((x - mu) ** 4).mean(dim=1) / (x.std(dim=1) ** 4 + eps)


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, values: torch.Tensor) -> None:
        self.total += float(values.double().sum())
        self.count += values.numel()

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclass
class FFNOutlierProbe:
    """Context manager recording the FFN output statistics of every :class:`~attnzoo.models.block.Block` of
    ``model`` (see the module docstring); ``summary()`` reports them."""

    model: nn.Module
    inf_norms: dict[str, _Mean] = field(default_factory=dict)
    kurtoses: dict[str, _Mean] = field(default_factory=dict)
    _handles: list[Any] = field(default_factory=list)

    def __enter__(self) -> Self:
        blocks = [(name, m) for name, m in self.model.named_modules() if isinstance(m, Block) and m.mlp is not None]
        if not blocks:
            raise ValueError("model has no Block with an MLP (Block.mlp) to probe")
        for name, block in blocks:
            self.inf_norms[name], self.kurtoses[name] = _Mean(), _Mean()
            self._handles.append(block.mlp.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            flat = out.detach().reshape(out.shape[0], -1).double()
            self.inf_norms[name].add(flat.abs().amax(dim=1))
            self.kurtoses[name].add(kurtosis(flat))
        return record

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def summary(self) -> dict[str, Any]:
        """``max_inf_norm`` (over layers, of the per-sequence ∞-norm averaged over sequences), ``avg_kurtosis``
        and ``max_kurtosis`` (over layers, of the averaged per-sequence kurtosis), and each layer's values."""
        norms = {k: v.value for k, v in self.inf_norms.items()}
        kurt = {k: v.value for k, v in self.kurtoses.items()}
        return {"max_inf_norm": max(norms.values()), "avg_kurtosis": sum(kurt.values()) / len(kurt),
                "max_kurtosis": max(kurt.values()), "inf_norm_per_layer": norms, "kurtosis_per_layer": kurt}


def affine_parameters(low: torch.Tensor, high: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Δ, z)`` of asymmetric uniform affine quantisation over ``[low, high]`` widened to include 0 (so that 0
    is exact): :meth:`attnzoo.quant.UniformQuantizer.params_from_range`."""
    params = UniformQuantizer(bits, symmetric=False).params_from_range(low, high)
    return params.scale, params.zero_point


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """``Δ · (clamp(round(x / Δ) + z, 0, 2^b − 1) − z)``: ``x`` rounded to the ``2^b`` levels of the grid
    (:meth:`attnzoo.quant.UniformQuantizer.quantize`, asymmetric)."""
    return UniformQuantizer(bits, symmetric=False).quantize(x, QParams(scale, zero_point))


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-tensor fake quantisation: levels ``Δ · {−(2^(b−1) − 1), ..., 2^(b−1) − 1}``,
    ``Δ = max |w| / (2^(b−1) − 1)`` (:class:`attnzoo.quant.UniformQuantizer`, symmetric)."""
    return UniformQuantizer(bits, symmetric=True).quantize(weight)


RunningMinMax = RunningMinMaxObserver
"""The official running min-max range estimator (:class:`attnzoo.quant.RunningMinMaxObserver`): the first batch's
min / max, then ``(1 − momentum) · new + momentum · old``."""


def quantize_w8a8(model: nn.Module, calibration: Iterable[Any], run: Callable[[nn.Module, Any], Any], *,
                  skip: Callable[[str, nn.Module], bool] = lambda name, module: False, bits: int = 8,
                  activation_bits: int | None = None) -> nn.Module:
    """A fake-quantised copy of ``model`` (``model`` is unchanged; see the module docstring), in eval mode: its
    ``nn.Linear`` weights quantised to ``bits`` bits, activation quantisers (``activation_bits``, default
    ``bits``) at the inputs and outputs of those layers and the outputs of every block, calibrated by
    ``run(copy, batch)`` on each ``calibration`` batch (in eval mode, without gradients) and then frozen.
    ``skip(name, module)`` keeps a linear layer in float (weights and activations).

    Built on :func:`attnzoo.quant.quantize`: one :class:`~attnzoo.quant.Rule` for every linear layer and an
    ``outputs`` entry per block."""
    activation = ActivationSpec(UniformQuantizer(bits if activation_bits is None else activation_bits,
                                                 symmetric=False), RunningMinMaxObserver(momentum=0.9))
    layers = quantizable_layers(model)
    skipped = [glob.escape(n) for n in layers if skip(n, model.get_submodule(n))]
    blocks = [(glob.escape(n), activation) for n, m in model.named_modules() if isinstance(m, Block)]
    rules = (Rule("*", weight=UniformQuantizer(bits, symmetric=True), input=activation, output=activation),)
    recipe = Recipe(rules, skip=tuple(skipped), outputs=tuple(blocks))
    return quantize(model, recipe, calibration, run).eval()

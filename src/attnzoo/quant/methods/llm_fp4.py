"""LLM-FP4 (Liu, Oguz, Zhao, Chang, Stock, Mehdad, Shi, Krishnamoorthi & Chandra, "LLM-FP4: 4-Bit
Floating-Point Quantized Transformers", arXiv 2310.16836): floating-point PTQ of weights and activations with a
searched format and exponent bias, and per-channel activation biases as power-of-two shifts.

Per linear layer, on calibration inputs ``X`` and the float output ``Y = X Wᵀ + b``:

- **Formats**: every split ``E + M = bits − 1`` with ``1 ≤ E ≤ 6`` (4 bits: E3M0, E2M1, E1M2) or the widths
  ``exponent_bits`` names, the same format for weights and activations, the best by output error.
- **Biases** (:class:`~attnzoo.quant.floating.FloatQuantizer`, scale ``2^−b``): min-max initialisation
  ``b₀ = 2^E − log2 max|x| + log2(2 − 2^−M) − 1`` per output channel of ``W`` and per tensor of ``X``; candidates
  ``α · b₀`` with ``α = α₀ + i (α₁ − α₀) / n``, ``i = 0 … n`` (official ``eq_alpha = 0.01``, ``eq_beta = 1.2``,
  ``eq_n = 100``) plus ``α = 1`` (so the search never ends worse than min-max); ``rounds`` alternations
  (official ``search_round = 3``) of the weight search (each output channel its own best bias, the mean squared
  error of its output with the activations quantized) and the activation search (one bias, the mean squared
  output error with the weights quantized) — the official ``FPPTQSLQuantLinear.calibration_step2``
  (nbasyl/LLM-FP4 ``quant_layers/fp_linear.py`` at f44ffea, read for this); then **bias correction**
  ``b ← b − mean_t((X̂ (Ŵ − W)ᵀ)_t)`` (official ``_bias_correction_quant_forward``).
- **Pre-shifted exponent biases** (``per_channel_activations``, paper Sec. 4.2): per input channel
  ``b_j`` from the channel's max, ``b̃ = min_j b_j`` (the per-tensor initialisation), integer shifts
  ``ρ_j = clamp(round(b_j), round(b̃), round(b̃) + 2^E − 1) − round(b̃)``. Since ``Q_{b̃+ρ_j}(x_j) =
  2^−ρ_j Q_b̃(2^ρ_j x_j)`` exactly, per-channel activation quantization equals per-tensor quantization of
  ``x ⊙ 2^ρ`` against ``W`` with column ``j`` scaled by ``2^−ρ_j``: the shifts fold into the weight and the
  runtime activation quantizer stays per tensor. Here ``x ⊙ 2^ρ`` runs as the layer's ``input_transform`` (an
  exact power-of-two multiply; in a model whose previous op is a LayerNorm it folds into ``γ, β``); ``ρ`` is
  fixed from the initialisation while the search moves ``b̃``.

Verified (``tests/test_quant_llm_fp4.py``): the reparameterization is exact (bit for bit in float64), the
searched layer error never exceeds the min-max initialisation's, the format search picks the best split, the
whole-model path is a copy with per-tensor activation quantizers and frozen weights. Not verified: the official
numbers (LLaMA); the format search of the paper (Sec. 4.1) is over layers jointly, here per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant.apply import default_run, prepare
from attnzoo.quant.base import QParams
from attnzoo.quant.floating import MAX_EXPONENT_BITS, FloatQuantizer
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.methods.layerwise import attention_mask_weights, calibration_batches, collecting
from attnzoo.quant.modules import ActivationQuantizer, QuantLinear
from attnzoo.quant.recipe import weight_only
from attnzoo.quant.uniform import check_bits
from attnzoo.validation import check_flag, check_int, check_real


@dataclass(frozen=True)
class FP4Options:
    """The search settings (official defaults but ``candidates``, which the CLI lowers for speed)."""

    bits: int = 4
    alpha_min: float = 0.01
    alpha_max: float = 1.2
    candidates: int = 100
    rounds: int = 3
    bias_correction: bool = True
    per_channel_activations: bool = True
    max_tokens: int = 1024
    exponent_bits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_bits("bits", self.bits)
        if self.bits < 3:
            raise ValueError(f"bits={self.bits}: a floating-point format needs at least 3 bits (sign, E >= 1, M >= 0 "
                             "with more than one exponent value)")
        check_real("alpha_min", self.alpha_min)
        check_real("alpha_max", self.alpha_max)
        if self.alpha_min >= self.alpha_max:
            raise ValueError(f"alpha_min={self.alpha_min} must be below alpha_max={self.alpha_max}")
        check_int("candidates", self.candidates, 1)
        check_int("rounds", self.rounds, 1)
        check_flag("bias_correction", self.bias_correction)
        check_flag("per_channel_activations", self.per_channel_activations)
        check_int("max_tokens", self.max_tokens, 1)
        if self.exponent_bits is not None:
            if not self.exponent_bits:
                raise ValueError("exponent_bits=(): give at least one exponent width (None: every split)")
            for e in self.exponent_bits:
                check_int("exponent_bits", e, 1)
                if e > min(self.bits - 1, MAX_EXPONENT_BITS):
                    raise ValueError(f"exponent_bits holds {e}: expected 1 to {min(self.bits - 1, MAX_EXPONENT_BITS)} "
                                     f"for bits={self.bits}")

    def formats(self) -> tuple[int, ...]:
        """The exponent widths searched: ``exponent_bits``, or every split ``E = 1 … min(bits − 1, 6)``."""
        return self.exponent_bits or tuple(range(1, min(self.bits - 1, MAX_EXPONENT_BITS) + 1))

    def alphas(self) -> torch.Tensor:
        n = self.candidates
        grid = [self.alpha_min + i * (self.alpha_max - self.alpha_min) / n for i in range(n + 1)]
        return torch.tensor(sorted(set(grid) | {1.0}), dtype=torch.float64)


def initial_bias(maxval: torch.Tensor, quantizer: FloatQuantizer) -> torch.Tensor:
    """``b₀ = 2^E − log2 maxval + log2(2 − 2^−M) − 1`` (``maxval`` becomes the largest magnitude)."""
    e, m = quantizer.exponent_bits, quantizer.mantissa_bits
    return 2 ** e - torch.log2(maxval.clamp(min=1e-30)) + math.log2(2 - 2 ** -m) - 1


def channel_shifts(x: torch.Tensor, quantizer: FloatQuantizer) -> tuple[torch.Tensor, torch.Tensor]:
    """``(b̃, ρ)``: the per-tensor bias ``min_j b_j`` and the integer shifts ``ρ_j`` of the input channels of
    ``x (tokens, channels)`` (see the module docstring)."""
    b = initial_bias(x.abs().amax(dim=0), quantizer)
    tensor_bias = b.min()
    base = torch.round(tensor_bias)
    rho = torch.clamp(torch.round(b), base, base + 2 ** quantizer.exponent_bits - 1) - base
    return tensor_bias, rho


class PowerOfTwoScale(nn.Module):
    """``x ↦ x ⊙ 2^ρ`` over the last axis (exact): the activation side of the pre-shifted exponent biases."""

    def __init__(self, rho: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("rho", rho.to(torch.int8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ldexp(x, self.rho.to(x.dtype))


def _quantize_rows(w: torch.Tensor, fmt: FloatQuantizer, bias: torch.Tensor) -> torch.Tensor:
    return fmt.quantize(w, fmt.params_from_bias(bias.to(w.dtype)))


@dataclass(frozen=True)
class LayerSearch:
    """The search result of one layer: format, weight biases (per output channel), activation bias, shifts,
    the quantized (shifted) weight, the corrected bias and the output mean squared error."""

    weight_format: FloatQuantizer
    activation_format: FloatQuantizer
    weight_bias: torch.Tensor
    activation_bias: torch.Tensor
    rho: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    error: float


def search_layer(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, exponent_bits: int,
                 options: FP4Options) -> LayerSearch:
    """The alternating bias search for one format (see the module docstring); ``x`` is ``(tokens, in)``."""
    w_fmt = FloatQuantizer(options.bits, exponent_bits, granularity=Granularity.per_row())
    a_fmt = FloatQuantizer(options.bits, exponent_bits)
    y = F.linear(x, weight, bias)
    if options.per_channel_activations:
        a_bias0, rho = channel_shifts(x, a_fmt)
    else:
        a_bias0, rho = initial_bias(x.abs().amax(), a_fmt), torch.zeros(x.shape[1])
    xs, ws = torch.ldexp(x, rho.to(x.dtype)), torch.ldexp(weight, -rho.to(weight.dtype))  # x Wᵀ unchanged
    w_bias0 = initial_bias(ws.abs().amax(dim=1), w_fmt)
    alphas = options.alphas().to(x.dtype)
    w_bias, a_bias = w_bias0.clone(), a_bias0.clone()
    for _ in range(options.rounds):
        xq = a_fmt.quantize(xs, a_fmt.params_from_bias(a_bias.to(x.dtype)))
        errors = torch.stack([((F.linear(xq, _quantize_rows(ws, w_fmt, a * w_bias0), bias) - y) ** 2).mean(dim=0)
                              for a in alphas])  # (candidates, out): each output channel its own best
        w_bias = alphas[errors.argmin(dim=0)] * w_bias0
        wq = _quantize_rows(ws, w_fmt, w_bias)
        a_errors = torch.stack([((F.linear(a_fmt.quantize(xs, a_fmt.params_from_bias(a * a_bias0)), wq, bias) - y)
                                 ** 2).mean() for a in alphas])
        a_bias = alphas[a_errors.argmin()] * a_bias0
    wq = _quantize_rows(ws, w_fmt, w_bias)
    xq = a_fmt.quantize(xs, a_fmt.params_from_bias(a_bias.to(x.dtype)))
    new_bias = bias
    if options.bias_correction and bias is not None:
        new_bias = bias - F.linear(xq, wq - ws).mean(dim=0)
    error = float(((F.linear(xq, wq, new_bias) - y) ** 2).mean())
    return LayerSearch(w_fmt, a_fmt, w_bias, a_bias, rho, wq, new_bias, error)


def search_formats(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
                   options: FP4Options) -> LayerSearch:
    """:func:`search_layer` for every exponent width of ``options.formats()``; the one with the lowest error
    (ties: the first)."""
    results = [search_layer(weight, bias, x, e, options) for e in options.formats()]
    return min(results, key=lambda r: r.error)


def collect_inputs(model: nn.Module, layers: dict[str, QuantLinear], batches: Sequence[Any],
                   run: Callable[[nn.Module, Any], Any], max_tokens: int) -> dict[str, torch.Tensor]:
    """Up to ``max_tokens`` real (unpadded) input rows ``(tokens, in)`` of each layer, float model."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    current: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(layer: QuantLinear, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            mask = attention_mask_weights(name, 0, current["batch"])
            if mask is not None and tuple(mask.shape) == tuple(x.shape[:-1]):
                x = x[mask.bool()]
            rows[name].append(x.reshape(-1, x.shape[-1]))
        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    try:
        with collecting(model, list(layers.values())), torch.no_grad():
            model.eval()
            for batch in batches:
                current["batch"] = batch
                run(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for name, parts in rows.items():
        if not parts:
            raise ValueError(f"calibration never reached layer {name!r}: skip it or pass batches that run through it")
        x = torch.cat(parts)
        if x.shape[0] > max_tokens:
            x = x[torch.linspace(0, x.shape[0] - 1, max_tokens).round().long()]
        out[name] = x
    return out


def llm_fp4(model: nn.Module, calibration: Iterable[Any], *, options: FP4Options = FP4Options(),
            pattern: str = "*", skip: Sequence[str] = (), run: Callable[[nn.Module, Any], Any] | None = None,
            progress: Callable[[str], None] | None = None) -> nn.Module:
    """A W``bits``A``bits`` floating-point copy of ``model`` (the layers matching ``pattern``, not ``skip``): each
    layer searched on its float calibration inputs (see the module docstring). ``model`` is unchanged.

    >>> model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    >>> q = llm_fp4(model, [torch.randn(64, 16)], options=FP4Options(candidates=10, rounds=1))
    >>> q[0].input_quantizer.quantizer.bits, q[0].weight_quantizer.bits
    (4, 4)
    """
    if not isinstance(options, FP4Options):
        raise TypeError(f"options={options!r}: expected FP4Options")
    batches = calibration_batches(calibration)
    run = default_run if run is None else run
    quantized = prepare(model, weight_only(FloatQuantizer(options.bits, 1, granularity=Granularity.per_row()),
                                           pattern=pattern, skip=skip))
    layers = {name: m for name, m in quantized.named_modules() if isinstance(m, QuantLinear)}
    inputs = collect_inputs(quantized, layers, batches, run, options.max_tokens)
    for name, layer in layers.items():
        w = layer.weight_matrix().detach()
        b = None if layer.bias is None else layer.bias.detach()
        x = inputs.pop(name).to(w.dtype)
        found = search_formats(w, b, x, options)
        layer.weight_quantizer = found.weight_format
        layer.freeze_weight(found.weight, found.weight_format.params_from_bias(found.weight_bias.to(w.dtype)))
        if found.bias is not None:
            with torch.no_grad():
                layer.bias.copy_(found.bias)
        if options.per_channel_activations:
            layer.input_transform = PowerOfTwoScale(found.rho)
        act = ActivationQuantizer(found.activation_format)
        params: QParams = found.activation_format.params_from_bias(found.activation_bias.to(w.dtype))
        act.scale = params.scale
        layer.input_quantizer = act
        if progress is not None:
            progress(name)
    return quantized

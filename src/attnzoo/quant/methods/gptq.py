"""GPTQ (Frantar, Ashkboos, Hoefler & Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", arXiv 2210.17323): column-by-column weight quantization with Hessian error feedback.

For a layer ``W (out, in)`` and the Hessian ``H = (2/n) Σ x xᵀ`` of its inputs
(:class:`~attnzoo.quant.methods.hessian.HessianAccumulator`), GPTQ minimises ``tr((W − Q) H (W − Q)ᵀ)``
greedily: with ``U`` the upper Cholesky factor of ``(H + λI)⁻¹`` (``λ = damp · mean diag H``), column ``j`` is
rounded, ``q_j = Q(w_j)``, and its error ``e_j = (w_j − q_j) / U_jj`` is spread over the columns not yet
quantized, ``w_k ← w_k − e_j U_jk`` (paper Eq. 2-4 in the Cholesky form of Sec. 3, step 3). Lazy batch updates
apply the update inside blocks of ``block_size`` columns and once per block to the rest.

Options (the official ``fasterquant`` arguments): ``damp`` (``percdamp``, 0.01), ``block_size`` (128),
``act_order`` (columns in order of decreasing ``diag H``; ties by index), ``static_groups`` (group parameters
fitted on the original weight up front, which act-order with groups requires here). The quantizer is any
:class:`~attnzoo.quant.base.Quantizer` per tensor, per row (output channel), per channel on axis 0, or per
group: per-row-like parameters are fitted on the whole weight first; group parameters are fitted when the
column loop reaches the group's first column, on the columns of the *global* working weight — which inside a
block has not yet received that block's updates (an official quirk, kept: it decides the parameters).
Dead inputs (``H_jj = 0``) get ``H_jj = 1`` and a zero weight column, as officially.

:func:`gptq` runs it on every weight-quantized layer of a copy of a model (attnzoo's or Hugging Face's) through
:func:`~attnzoo.quant.methods.layerwise.quantize_layerwise` (true-sequential by default, padding dropped from the
Hessian); the round-to-nearest baseline of a model is :func:`attnzoo.quant.quantize` with the same recipe.

Verified (``tests/test_quant_gptq.py``): bit for bit against a transcription of the official ``fasterquant``
with its min-max quantizer (``quant.py``) on random layers (per channel, groups with and without static groups,
act-order, dead columns, several blocks); the reported loss against ``½ Σ (w − q)² / U_jj²``; GPTQ equals
round to nearest when ``H`` is diagonal-free (``H = I``); and its calibration loss ``tr(ΔW H ΔWᵀ)`` never
exceeds round to nearest's on correlated inputs, over seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from attnzoo.quant.base import QParams, Quantizer, check_float_input
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.methods.hessian import HessianAccumulator
from attnzoo.quant.methods.layerwise import TokenWeights, quantize_layerwise
from attnzoo.quant.modules import QuantLinear
from attnzoo.quant.recipe import Recipe
from attnzoo.validation import check_flag, check_int, check_real


@dataclass(frozen=True)
class GPTQOptions:
    """The official ``fasterquant`` options (see the module docstring)."""

    block_size: int = 128
    damp: float = 0.01
    act_order: bool = False
    static_groups: bool = False

    def __post_init__(self) -> None:
        check_int("block_size", self.block_size, 1)
        check_real("damp", self.damp, minimum=0.0, inclusive=True)
        check_flag("act_order", self.act_order)
        check_flag("static_groups", self.static_groups)


@dataclass(frozen=True)
class GPTQResult:
    """The quantized weight (on the grid of ``params``), its parameters (the quantizer's compact shape) and
    GPTQ's loss estimate ``½ Σ_j ‖w_j − q_j‖² / U_jj²``."""

    weight: torch.Tensor
    params: QParams
    loss: torch.Tensor


def _check(weight: torch.Tensor, hessian: torch.Tensor, quantizer: Quantizer, options: GPTQOptions) -> None:
    check_float_input(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight has shape {tuple(weight.shape)}; expected (out, in)")
    check_float_input(hessian, "hessian")
    if tuple(hessian.shape) != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"hessian has shape {tuple(hessian.shape)}; expected (in, in) = "
                         f"{(weight.shape[1], weight.shape[1])} for a weight of shape {tuple(weight.shape)}")
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer={quantizer!r}: expected an attnzoo.quant Quantizer")
    if not isinstance(options, GPTQOptions):
        raise TypeError(f"options={options!r}: expected GPTQOptions")
    g = quantizer.granularity
    if g.kind == "channel" and g.axis % 2 != 0:
        raise ValueError(f"GPTQ quantizes column by column: a weight quantizer {g} (per input channel) does not fit; "
                         "use per tensor, per row (output channel) or per group")
    if g.kind == "group":
        g.view(weight)  # a group size that does not divide in_features fails here, naming it
        if options.act_order and not options.static_groups:
            raise ValueError("act_order=True with a per-group quantizer needs static_groups=True: the official "
                             "dynamic groups follow the permuted columns and are not contiguous groups of the "
                             "stored format")


def _factor(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """The upper Cholesky factor of ``(H + damp · mean diag H · I)⁻¹`` (official order of operations)."""
    h = hessian.clone()
    diag = torch.arange(h.shape[0])
    h[diag, diag] += damp * torch.mean(torch.diag(h))
    lower, info = torch.linalg.cholesky_ex(h)
    if int(info) != 0:
        raise ValueError(f"the damped Hessian is not positive definite (Cholesky failed at column {int(info)}): "
                         f"raise damp (now {damp}) or calibrate on more tokens")
    return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, quantizer: Quantizer,
                  options: GPTQOptions = GPTQOptions()) -> GPTQResult:
    """GPTQ of one weight ``(out, in)`` given its input Hessian ``(in, in)`` (see the module docstring); the
    computation runs in ``weight``'s dtype promoted to at least float32."""
    _check(weight, hessian, quantizer, options)
    dtype = torch.promote_types(weight.dtype, torch.float32)
    w = weight.detach().clone().to(dtype)
    h = hessian.detach().clone().to(dtype)
    columns, grouped = w.shape[1], quantizer.granularity.kind == "group"
    column_quantizer = replace(quantizer, granularity=Granularity.per_row()) if grouped else quantizer
    size = quantizer.granularity.group_size
    params = None if grouped else quantizer.fit(w)

    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    static = ([column_quantizer.fit(w[:, i:i + size]) for i in range(0, columns, size)]
              if grouped and options.static_groups else None)
    perm = torch.arange(columns)
    if options.act_order:
        perm = torch.argsort(torch.diag(h), descending=True, stable=True)
        w, h = w[:, perm], h[perm][:, perm]
    u = _factor(h, options.damp)

    q, losses = torch.zeros_like(w), torch.zeros_like(w)
    groups: list[QParams | None] = [None] * (columns // size if grouped else 0)
    current = params
    for i1 in range(0, columns, options.block_size):
        i2 = min(i1 + options.block_size, columns)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            col, d = w1[:, i], u1[i, i]
            if grouped:
                if static is not None:
                    current = static[int(perm[i1 + i]) // size]
                elif (i1 + i) % size == 0:
                    current = groups[(i1 + i) // size] = column_quantizer.fit(w[:, i1 + i:i1 + i + size])
            qc = column_quantizer.quantize(col.unsqueeze(1), current).flatten()
            q[:, i1 + i] = qc
            losses[:, i1 + i] = (col - qc) ** 2 / d ** 2 / 2
            e = (col - qc) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(u1[i, i:].unsqueeze(0))
            err1[:, i] = e
        w[:, i2:] -= err1.matmul(u[i1:i2, i2:])

    if options.act_order:
        q = q[:, torch.argsort(perm)]
    if grouped:
        chosen = static if static is not None else groups
        scale = torch.stack([p.scale for p in chosen], dim=1)
        zero = None if chosen[0].zero_point is None else torch.stack([p.zero_point for p in chosen], dim=1)
        params = QParams(scale, zero)
    return GPTQResult(q.to(weight.dtype), params, losses.sum())


def rtn_quantize(weight: torch.Tensor, quantizer: Quantizer) -> GPTQResult:
    """Round to nearest, the baseline: ``Q(W)`` with parameters fitted to ``W`` (``loss`` is 0: RTN has no
    Hessian; use :func:`calibration_loss` to compare)."""
    check_float_input(weight, "weight")
    params = quantizer.fit(weight.detach())
    return GPTQResult(quantizer.quantize(weight.detach(), params), params, torch.zeros(()))


def calibration_loss(weight: torch.Tensor, quantized: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """GPTQ's objective ``tr((W − Q) H (W − Q)ᵀ)`` (``= (2/n) Σ_t ‖(W − Q) x_t‖²``)."""
    delta = (weight - quantized).to(hessian.dtype)
    return torch.einsum("oi,ij,oj->", delta, hessian, delta)


def gptq(model: nn.Module, recipe: Recipe, calibration: Iterable[Any], *, options: GPTQOptions = GPTQOptions(),
         sequential: bool = True, run: Callable[[nn.Module, Any], Any] | None = None,
         token_weights: TokenWeights | None = None, progress: Callable[[str], None] | None = None) -> nn.Module:
    """A GPTQ-quantized copy of ``model``: each layer's weight quantizer of ``recipe`` applied by
    :func:`gptq_quantize` on the Hessian of its calibration inputs (activation quantizers of the recipe are then
    calibrated as by :func:`attnzoo.quant.quantize`). ``model`` is unchanged.

    >>> from attnzoo.quant import Granularity, UniformQuantizer, weight_only
    >>> model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    >>> recipe = weight_only(UniformQuantizer(4, symmetric=False, granularity=Granularity.per_row()))
    >>> q = gptq(model, recipe, [torch.randn(64, 16)])
    >>> type(q[0]).__name__, q[0].weight_params.scale.shape
    ('QuantLinear', torch.Size([32]))
    """
    def solve(name: str, layer: QuantLinear, hessian: HessianAccumulator) -> tuple[torch.Tensor, QParams]:
        result = gptq_quantize(layer.weight_matrix(), hessian.hessian, layer.weight_quantizer, options)
        return result.weight, result.params

    if not isinstance(options, GPTQOptions):
        raise TypeError(f"options={options!r}: expected GPTQOptions")
    return quantize_layerwise(model, recipe, calibration, solve, sequential=sequential, run=run,
                              token_weights=token_weights, progress=progress)

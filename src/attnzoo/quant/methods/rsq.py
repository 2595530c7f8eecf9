"""RSQ (Sung, Yadav, Li, Yoon & Bansal, "RSQ: Learning from Important Tokens Leads to Better Quantized LLMs",
arXiv 2503.01820): **r**otate, **s**cale, then **q**uantize — GPTQ whose Hessian weights each token by its
importance, after a randomized Hadamard rotation of every layer.

1. Rotate: each quantized layer gets ``x ↦ x Q`` on its input and ``W ← W Q``
   (:class:`~attnzoo.quant.methods.hadamard.RandomizedHadamard`; exact, :func:`rotate` checks it). The official
   code folds QuaRot's rotations into the residual stream of LLaMA-type models (RMSNorm commutes with them);
   here the input rotation runs online per layer, which is exact for any model (post-LayerNorm BERT included,
   where a residual-stream rotation would not commute with the mean subtraction) at ``O(n log n)`` per token.
2. Scale, attention concentration ("AttnCon", the official ``OriginalAttentionWeighting``): the attention a token
   *receives*, ``r_t = Σ_heads Σ_queries A[h, q, t]`` (:func:`attention_received`, real queries only), optionally
   divided by the number of queries that can see ``t`` (``position="linear"``: ``T − t``, or its square root:
   for causal models), then min-max normalised to ``[min_value, max_value]`` over the real tokens (official
   script: 0.005 and 1) (:func:`attention_concentration`). ``A`` comes from the float model's attention maps of
   the transformer layer a linear layer belongs to (the first integer in its name, ``encoder.layer.3.…`` → 3;
   layers outside the blocks take the mean over layers) — the official code recomputes ``A`` from the current
   layer input of the partially quantized model, a difference of one forward pass of drift.
3. Quantize: GPTQ (:mod:`~attnzoo.quant.methods.gptq`) on ``H = (2/n) Σ_t r̃_t x_t x_tᵀ``, ``r̃`` normalised to
   mean 1 per sequence (:mod:`~attnzoo.quant.methods.hessian`).

Verified (``tests/test_quant_rsq.py``): the catalog's reductions — uniform importance gives GPTQ bit for bit,
scale invariance (bit for bit for a power-of-two factor), the weighted-loss identity
``Σ_t r̃_t ‖(W − Q) x_t‖² = (n/2) tr((W − Q) H (W − Q)ᵀ)``, tokens with ``r = 0`` dropping out, rotation exactness
of a whole model in float64, and ``Σ_t r_t = h · T`` before normalisation.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from attnzoo.quant.apply import _replace_everywhere, default_run, quantizable_layers
from attnzoo.quant.base import QParams
from attnzoo.quant.methods.gptq import GPTQOptions, gptq_quantize
from attnzoo.quant.methods.hadamard import RandomizedHadamard
from attnzoo.quant.methods.hessian import HessianAccumulator
from attnzoo.quant.methods.layerwise import attention_mask_weights, calibration_batches, quantize_layerwise
from attnzoo.quant.modules import QuantLinear
from attnzoo.quant.recipe import Recipe, require_match
from attnzoo.validation import check_real

Position = Literal["none", "linear", "sqrt"]
Attentions = Callable[[nn.Module, Any], Sequence[torch.Tensor]]
"""``attentions(model, batch)`` gives one ``(B, heads, T, T)`` attention map per transformer layer."""


def attention_received(attention: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``r_t = Σ_h Σ_q A[h, q, t]`` over the real queries ``q`` (``mask (B, T)``, 1 real, 0 padding): ``(B, T)``."""
    if attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention has shape {tuple(attention.shape)}; expected (batch, heads, T, T)")
    if mask is not None:
        if tuple(mask.shape) != (attention.shape[0], attention.shape[-1]):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; expected (batch, T) = "
                             f"{(attention.shape[0], attention.shape[-1])}")
        attention = attention * mask.to(attention.dtype)[:, None, :, None]
    return attention.sum(dim=(1, 2))


def attention_concentration(attention: torch.Tensor, mask: torch.Tensor | None = None, *,
                            position: Position = "none", min_value: float = 0.005,
                            max_value: float = 1.0) -> torch.Tensor:
    """RSQ's AttnCon token importance ``(B, T)`` (see the module docstring); 0 at padding."""
    if position not in ("none", "linear", "sqrt"):
        raise ValueError(f"position={position!r}: expected 'none', 'linear' or 'sqrt'")
    check_real("min_value", min_value, minimum=0.0, inclusive=True)
    check_real("max_value", max_value)
    if not min_value <= max_value:
        raise ValueError(f"min_value={min_value} > max_value={max_value}")
    r = attention_received(attention, mask).to(torch.float32)
    real = torch.ones_like(r, dtype=torch.bool) if mask is None else mask.bool()
    if position != "none":
        seen_by = (real.sum(dim=1, keepdim=True) - torch.arange(r.shape[1])).clamp(min=1).to(r.dtype)
        r = r / (seen_by if position == "linear" else seen_by.sqrt())
    low = torch.where(real, r, torch.inf).amin(dim=1, keepdim=True)
    high = torch.where(real, r, -torch.inf).amax(dim=1, keepdim=True)
    spread = torch.where(high > low, high - low, torch.ones_like(high))
    scaled = torch.where(high > low, (r - low) / spread, torch.ones_like(r)) * (max_value - min_value) + min_value
    return torch.where(real, scaled, torch.zeros_like(scaled))


def hf_attentions(model: nn.Module) -> Attentions:
    """The attention maps of a Hugging Face model (``output_attentions=True`` on one eager-attention copy)."""
    if not hasattr(model, "set_attn_implementation"):
        raise TypeError(f"{type(model).__name__} is not a Hugging Face model: pass attentions=")
    eager = copy.deepcopy(model).eval()
    eager.set_attn_implementation("eager")

    def maps(_: nn.Module, batch: Any) -> Sequence[torch.Tensor]:  # noqa: ANN401
        with torch.no_grad():
            out = eager(**batch, output_attentions=True) if isinstance(batch, dict) else eager(
                batch, output_attentions=True)
        if not getattr(out, "attentions", None):
            raise ValueError(f"{type(model).__name__} returned no attentions: pass attentions=")
        return out.attentions

    return maps


_LAYER_INDEX = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def fold_rotation(layer: QuantLinear, seed: int) -> None:
    """``W ← W Q`` and ``x ↦ x Q`` on ``layer`` (its output is unchanged in exact arithmetic)."""
    rotation = RandomizedHadamard(layer.in_features, seed).to(layer.weight.device)
    with torch.no_grad():
        rotated = rotation(layer.weight_matrix().detach().double()).to(layer.weight.dtype)
    layer.weight = nn.Parameter(rotated.t().contiguous() if layer.transposed else rotated,
                                requires_grad=layer.weight.requires_grad)
    layer.input_transform = rotation


def rotate(model: nn.Module, *, seed: int = 0, skip: Sequence[str] = ()) -> nn.Module:
    """A copy of ``model`` whose quantizable layers (not matching ``skip``) are float :class:`QuantLinear`
    layers with a folded randomized Hadamard rotation: the same function, rotated inputs."""
    names = quantizable_layers(model)
    for pattern in skip:
        require_match(pattern, names, "quantizable layer")
    rotated = copy.deepcopy(model)
    for i, name in enumerate(n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in skip)):
        module = rotated.get_submodule(name)
        layer = QuantLinear.from_module(module)
        fold_rotation(layer, seed + i)
        _replace_everywhere(rotated, module, layer)
    return rotated


def _layer_index(name: str) -> int | None:
    match = _LAYER_INDEX.search(name)
    return None if match is None else int(match.group(1))


def rsq(model: nn.Module, recipe: Recipe, calibration: Iterable[Any], *, options: GPTQOptions = GPTQOptions(),
        rotate_inputs: bool = True, seed: int = 0, attentions: Attentions | None = None,
        position: Position = "none", min_value: float = 0.005, max_value: float = 1.0, sequential: bool = True,
        run: Callable[[nn.Module, Any], Any] | None = None,
        progress: Callable[[str], None] | None = None) -> nn.Module:
    """An RSQ-quantized copy of ``model`` (see the module docstring): rotations folded (``rotate_inputs``),
    AttnCon importance from ``attentions`` (default :func:`hf_attentions` of ``model``), importance-weighted GPTQ."""
    batches = calibration_batches(calibration)
    attentions = hf_attentions(model) if attentions is None else attentions
    importance = []
    for index, batch in enumerate(batches):
        maps = list(attentions(model, batch))
        if not maps:
            raise ValueError(f"attentions gave no attention map for calibration batch {index}")
        mask = attention_mask_weights("", index, batch)
        per_layer = [attention_concentration(a.detach(), mask, position=position, min_value=min_value,
                                             max_value=max_value) for a in maps]
        importance.append(per_layer)

    def token_weights(name: str, index: int, batch: Any) -> torch.Tensor:  # noqa: ANN401
        per_layer = importance[index]
        layer = _layer_index(name)
        if layer is None or layer >= len(per_layer):
            return torch.stack(per_layer).mean(dim=0)
        return per_layer[layer]

    def prepare_layers(copy_: nn.Module, layers: dict[str, QuantLinear]) -> None:
        if not rotate_inputs:
            return
        for i, (name, layer) in enumerate(layers.items()):
            try:
                fold_rotation(layer, seed + i)
            except ValueError as error:
                raise ValueError(f"layer {name!r} (in_features={layer.in_features}): {error}") from error

    def solve(name: str, layer: QuantLinear, hessian: HessianAccumulator) -> tuple[torch.Tensor, QParams]:
        result = gptq_quantize(layer.weight_matrix(), hessian.hessian, layer.weight_quantizer, options)
        return result.weight, result.params

    return quantize_layerwise(model, recipe, batches, solve, sequential=sequential,
                              run=default_run if run is None else run, token_weights=token_weights,
                              prepare_layers=prepare_layers, progress=progress)

"""Quantize a whole model with a :class:`~attnzoo.quant.recipe.Recipe`: attnzoo's own models and Hugging Face
``transformers`` models alike (anything whose layers are ``nn.Linear`` or HF's ``Conv1D``).

- :func:`prepare` returns a *copy* with each assigned layer swapped for a
  :class:`~attnzoo.quant.modules.QuantLinear` (sharing nothing with the input model) and output quantizers
  hooked on the modules ``recipe.outputs`` names. The input model is never modified, so a failure part-way (a
  group size that does not divide one layer, a bad calibration batch) leaves it as it was (tested).
- :func:`calibrate` runs batches through the copy (eval mode, no gradients): observers record, then freeze.
- :func:`quantize` is ``prepare`` then ``calibrate``.
- :func:`pack` turns every weight-quantized ``QuantLinear`` into a :class:`~attnzoo.quant.packed.PackedLinear`
  (real storage); :func:`storage_bytes` counts the model's bytes as stored.

A batch is passed as ``model(**batch)`` for a mapping (tokenizer output), ``model(*batch)`` for a tuple or list,
else ``model(batch)``; ``run(model, batch)`` overrides that.

Extension points for the methods built on this (GPTQ/RSQ, LLM-FP4's search, BitNet, LRP-QViT, ...): a method
is a function of a prepared copy (its ``QuantLinear`` layers, their quantizers and ``encode_weight``) and the
calibration batches; activation quantizers can be inserted at any other point (e.g. the attention matmul
inputs) as :class:`~attnzoo.quant.modules.ActivationQuantizer` modules, which :func:`calibrate` finds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from attnzoo.quant.modules import ActivationQuantizer, QuantLinear, is_quantizable
from attnzoo.quant.packed import PackedLinear
from attnzoo.quant.recipe import Recipe
from attnzoo.quant.ternary import TernaryQuantizer
from attnzoo.registry import NotSupportedError

OUTPUT_QUANTIZER = "output_quantizer"
"""The child name of the activation quantizer :func:`prepare` adds to a module listed in ``recipe.outputs``."""

Run = Callable[[nn.Module, Any], Any]


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` / ``Conv1D`` layers of ``model``, in module order."""
    return [name for name, module in model.named_modules() if is_quantizable(module)]


def _replace_everywhere(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` at every place ``old`` is registered (a shared submodule has several names)."""
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if module is old and name:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, new)


def _quantize_output(module: nn.Module, args: Any, output: Any) -> torch.Tensor:  # noqa: ANN401
    if not isinstance(output, torch.Tensor):
        raise NotSupportedError(f"output quantization of {type(module).__name__}: its output is a "
                                f"{type(output).__name__}, not a tensor")
    return getattr(module, OUTPUT_QUANTIZER)(output)


def prepare(model: nn.Module, recipe: Recipe) -> nn.Module:
    """A copy of ``model`` with the recipe's quantizers in place (observers still calibrating)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be an attnzoo.quant Recipe, got {type(recipe).__name__}")
    assigned = recipe.assign(quantizable_layers(model))
    outputs = recipe.assign_outputs([name for name, _ in model.named_modules() if name])
    quantized = copy.deepcopy(model)
    for name, rule in assigned.items():
        module = quantized.get_submodule(name)
        try:
            layer = QuantLinear.from_module(module, weight_quantizer=rule.weight,
                                            input_quantizer=rule.input.build() if rule.input else None,
                                            output_quantizer=rule.output.build() if rule.output else None)
        except (ValueError, TypeError, NotSupportedError) as error:
            raise type(error)(f"layer {name!r}: {error}") from error
        _replace_everywhere(quantized, module, layer)
    for name, spec in outputs.items():
        module = quantized.get_submodule(name)
        if hasattr(module, OUTPUT_QUANTIZER):
            raise ValueError(f"module {name!r} already has an output quantizer (a rule's output, or a second "
                             "outputs pattern naming it)")
        module.add_module(OUTPUT_QUANTIZER, spec.build())
        module.register_forward_hook(_quantize_output)
    return quantized


def _describe(batch: Any) -> str:  # noqa: ANN401
    if isinstance(batch, torch.Tensor):
        return f"tensor of shape {tuple(batch.shape)}"
    if isinstance(batch, Mapping):
        return "mapping " + ", ".join(f"{k}: {_describe(v)}" for k, v in batch.items())
    if isinstance(batch, (tuple, list)):
        return f"{type(batch).__name__} of " + ", ".join(_describe(v) for v in batch)
    return type(batch).__name__


def default_run(model: nn.Module, batch: Any) -> Any:  # noqa: ANN401
    """``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple / list, else ``model(batch)``."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def calibrate(model: nn.Module, batches: Iterable[Any], run: Run | None = None) -> nn.Module:
    """Run ``batches`` through ``model`` (prepared; eval mode, no gradients), then freeze every observer's range.
    Returns ``model``, in its original train / eval mode."""
    if isinstance(batches, torch.Tensor):
        raise TypeError(f"calibration must be an iterable of batches, got one tensor of shape "
                        f"{tuple(batches.shape)} (iterating it would feed its rows): pass [tensor]")
    quantizers = [(name, m) for name, m in model.named_modules()
                  if isinstance(m, ActivationQuantizer) and m.observer is not None]
    for _, q in quantizers:
        q.observer.reset()
        q.set_mode("calibrate")
    run = default_run if run is None else run
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(batches):
                try:
                    run(model, batch)
                except Exception as error:
                    raise ValueError(f"calibration batch {i} ({_describe(batch)}) failed in the model: "
                                     f"{type(error).__name__}: {error}") from error
    finally:
        model.train(training)
    missing = [name for name, q in quantizers if q.observer.batches == 0]
    if missing:
        raise ValueError(f"calibration ran no batch through {len(missing)} activation quantizer(s) "
                         f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}): pass calibration "
                         "batches that reach every quantized layer")
    for _, q in quantizers:
        q.freeze()
    return model


def quantize(model: nn.Module, recipe: Recipe, calibration: Iterable[Any] = (), run: Run | None = None) -> nn.Module:
    """A quantized copy of ``model`` (``model`` is unchanged): :func:`prepare`, then :func:`calibrate` on
    ``calibration`` when the recipe has observers.

    >>> from attnzoo.quant import UniformQuantizer, RunningMinMaxObserver, weights_and_activations
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> recipe = weights_and_activations(UniformQuantizer(8), UniformQuantizer(8, symmetric=False),
    ...                                  RunningMinMaxObserver(), skip=["2"])
    >>> q = quantize(model, recipe, calibration=[torch.randn(32, 8)])
    >>> type(q[0]).__name__, type(q[2]).__name__, type(model[0]).__name__
    ('QuantLinear', 'Linear', 'Linear')
    """
    prepared = prepare(model, recipe)
    if any(isinstance(m, ActivationQuantizer) and m.observer is not None for m in prepared.modules()):
        calibrate(prepared, calibration, run)
    return prepared


def pack(model: nn.Module, *, ternary_base3: bool = False) -> nn.Module:
    """A copy of a quantized ``model`` whose weight-quantized :class:`QuantLinear` layers are
    :class:`PackedLinear` (real storage; same outputs bit for bit)."""
    packed = copy.deepcopy(model)
    layers = [m for m in packed.modules() if isinstance(m, QuantLinear) and m.weight_quantizer is not None]
    if not layers:
        raise ValueError("model has no QuantLinear with a weight quantizer: quantize it first")
    for layer in layers:
        _replace_everywhere(packed, layer, PackedLinear.from_quant_linear(
            layer, ternary_base3=ternary_base3 and isinstance(layer.weight_quantizer, TernaryQuantizer)))
    return packed


def storage_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of ``model``'s parameters and buffers as stored (each tensor once, tied weights once):
    ``packed`` (the :class:`PackedLinear` codes and parameters), ``other`` (everything else) and ``total``."""
    seen: set[int] = set()

    def count(tensors: Iterable[torch.Tensor]) -> int:
        total = 0
        for t in tensors:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total

    packed = sum(count([m.packed, m.scale, m.zero_point]) for m in model.modules() if isinstance(m, PackedLinear))
    other = count(list(model.parameters()) + list(model.buffers()))
    return {"packed": packed, "other": other, "total": packed + other}

"""The calibration driver shared by the Hessian-based methods (GPTQ, RSQ): quantize a *copy* of a model layer by
layer from the inputs each layer sees on calibration batches.

:func:`quantize_layerwise` prepares a copy with the recipe (:func:`attnzoo.quant.prepare`), then for each
weight-quantized :class:`~attnzoo.quant.modules.QuantLinear` (module order) accumulates the Hessian of its inputs
(after its ``input_transform``) and asks ``solve`` for the quantized weight and parameters, which it freezes in
the layer (:meth:`~attnzoo.quant.modules.QuantLinear.freeze_weight`). While inputs are collected, activation
quantizers are off and layers not yet solved keep float weights, so with ``sequential=True`` (the official
"true sequential" order) each layer sees the outputs of the already-quantized layers before it — one pass over
the calibration batches per layer; ``sequential=False`` collects every Hessian in one pass of the float model.
Activation observers of the recipe are calibrated afterwards (:func:`attnzoo.quant.calibrate`). The input model
is never modified; a failure leaves only the discarded copy half-done.

Token weights: ``token_weights(layer_name, batch_index, batch)`` gives ``(B, T)`` weights of the layer's input
tokens or ``None``; the default, :func:`attention_mask_weights`, drops padding (a mapping batch's
``attention_mask``), so padded batches give the Hessian of the real tokens only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from attnzoo.quant.apply import Run, calibrate, default_run, prepare
from attnzoo.quant.base import QParams
from attnzoo.quant.methods.hessian import HessianAccumulator
from attnzoo.quant.modules import ActivationQuantizer, QuantLinear
from attnzoo.quant.recipe import Recipe

TokenWeights = Callable[[str, int, Any], "torch.Tensor | None"]
Solve = Callable[[str, QuantLinear, HessianAccumulator], tuple[torch.Tensor, QParams]]
"""``solve(name, layer, hessian)`` gives the layer's quantized ``(out, in)`` weight and its parameters."""


def attention_mask_weights(name: str, index: int, batch: Any) -> torch.Tensor | None:  # noqa: ANN401
    """A mapping batch's ``attention_mask`` (1 real token, 0 padding) as token weights, else ``None``."""
    if isinstance(batch, Mapping) and "attention_mask" in batch:
        return batch["attention_mask"].to(torch.float32)
    return None


def calibration_batches(calibration: Iterable[Any]) -> list[Any]:
    """The batches as a list (they are read once per layer), refusing a bare tensor and an empty set."""
    if isinstance(calibration, torch.Tensor):
        raise TypeError(f"calibration must be an iterable of batches, got one tensor of shape "
                        f"{tuple(calibration.shape)} (iterating it would feed its rows): pass [tensor]")
    batches = list(calibration)
    if not batches:
        raise ValueError("calibration is empty: these methods need at least one calibration batch")
    return batches


@contextlib.contextmanager
def collecting(model: nn.Module, pending: list[QuantLinear]) -> Iterator[None]:
    """Activation quantizers off and the ``pending`` layers' weights in float, restored on exit."""
    quantizers = [(m, m.mode) for m in model.modules() if isinstance(m, ActivationQuantizer)]
    saved = [(layer, layer.weight_quantizer) for layer in pending]
    for m, _ in quantizers:
        m.mode = "off"
    for layer in pending:
        layer.weight_quantizer = None
    try:
        yield
    finally:
        for m, mode in quantizers:
            m.mode = mode
        for layer, quantizer in saved:
            layer.weight_quantizer = quantizer


def collect_hessians(model: nn.Module, layers: dict[str, QuantLinear], batches: list[Any], run: Run,
                     token_weights: TokenWeights) -> dict[str, HessianAccumulator]:
    """The input Hessian of each of ``layers`` over ``batches`` (eval mode, no gradients)."""
    accumulators = {name: HessianAccumulator(layer.in_features) for name, layer in layers.items()}
    current: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(layer: QuantLinear, args: tuple[Any, ...]) -> None:
            x = args[0] if layer.input_transform is None else layer.input_transform(args[0])
            weights = token_weights(name, current["index"], current["batch"])
            try:
                accumulators[name].add(x.detach(), weights)
            except ValueError as error:
                raise ValueError(f"layer {name!r}, calibration batch {current['index']}: {error}") from error
        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for index, batch in enumerate(batches):
                current.update(index=index, batch=batch)
                run(model, batch)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    missing = [name for name, acc in accumulators.items() if acc.samples == 0]
    if missing:
        raise ValueError(f"calibration never reached layer(s) {missing[:4]}: pass batches that run through every "
                         "quantized layer, or skip those layers in the recipe")
    return accumulators


def quantize_layerwise(model: nn.Module, recipe: Recipe, calibration: Iterable[Any], solve: Solve, *,
                       sequential: bool = True, run: Run | None = None, token_weights: TokenWeights | None = None,
                       prepare_layers: Callable[[nn.Module, dict[str, QuantLinear]], None] | None = None,
                       progress: Callable[[str], None] | None = None) -> nn.Module:
    """A quantized copy of ``model`` (see the module docstring). ``prepare_layers(copy, layers)`` may change the
    prepared copy first (RSQ folds its rotations there); ``progress(name)`` is called after each layer."""
    batches = calibration_batches(calibration)
    run = default_run if run is None else run
    token_weights = attention_mask_weights if token_weights is None else token_weights
    quantized = prepare(model, recipe)
    layers = {name: m for name, m in quantized.named_modules()
              if isinstance(m, QuantLinear) and m.weight_quantizer is not None}
    if not layers:
        raise ValueError("the recipe quantizes no layer weight: these methods quantize weights")
    if prepare_layers is not None:
        prepare_layers(quantized, layers)
    names = list(layers)
    stages = [[name] for name in names] if sequential else [names]
    for stage in stages:
        pending = [layers[n] for n in names[names.index(stage[0]):]]
        with collecting(quantized, pending):
            hessians = collect_hessians(quantized, {n: layers[n] for n in stage}, batches, run, token_weights)
        for name in stage:
            layer = layers[name]
            try:
                weight, params = solve(name, layer, hessians.pop(name))
            except ValueError as error:
                raise ValueError(f"layer {name!r}: {error}") from error
            layer.freeze_weight(weight, params)
            if progress is not None:
                progress(name)
    if any(isinstance(m, ActivationQuantizer) and m.observer is not None for m in quantized.modules()):
        calibrate(quantized, batches, run)
    return quantized

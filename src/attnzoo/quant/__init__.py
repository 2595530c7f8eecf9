"""The quantization toolkit: formats, observers, fake-quant modules, packed storage, int8 kernels and
whole-model quantization by recipe — the foundation the compression methods (W8A8, LLM-FP4, GPTQ/RSQ,
BitNet b1.58, LRP-QViT, Q-VLM, Mesa, ...) build on.

- Formats (one interface, :class:`Quantizer`: ``fit``, ``quantize``, ``encode`` / ``decode``):
  :class:`UniformQuantizer` (integer, symmetric / asymmetric, 2-16 bits), :class:`FloatQuantizer` (ExMy with a
  real exponent bias, LLM-FP4, arXiv 2310.16836), :class:`TernaryQuantizer` (absmean / absmedian, BitNet b1.58,
  arXiv 2402.17764 and 2407.09527); per tensor / channel / row / group (:class:`Granularity`); round to nearest
  or stochastic (unbiased).
- Observers: :class:`MinMaxObserver`, :class:`RunningMinMaxObserver` (the official estimator of arXiv
  2306.12929), :class:`PercentileObserver`.
- Training: :func:`fake_quantize` with straight-through estimators, :class:`ActivationQuantizer`,
  :class:`QuantLinear`.
- Storage and kernels: :mod:`~attnzoo.quant.packing` (int8, int4 two per byte, ternary 2-bit or base 3),
  :class:`PackedLinear` (exact bytes), :class:`Int8Linear` (``torch._int_mm`` / ``torch._weight_int8pack_mm``).
- Models: :func:`quantize` (a quantized copy by :class:`Recipe`: glob patterns, skip list, calibration),
  :func:`prepare`, :func:`calibrate`, :func:`pack`, :func:`storage_bytes`.
"""

from attnzoo.quant.apply import calibrate, pack, prepare, quantizable_layers, quantize, storage_bytes
from attnzoo.quant.base import QParams, QuantizedTensor, Quantizer
from attnzoo.quant.floating import FloatQuantizer
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.int8 import Int8Linear, int8_linear, weight_only_int8_linear
from attnzoo.quant.modules import ActivationQuantizer, QuantLinear
from attnzoo.quant.observers import MinMaxObserver, Observer, PercentileObserver, RunningMinMaxObserver
from attnzoo.quant.packed import PackedLinear
from attnzoo.quant.recipe import ActivationSpec, Recipe, Rule, weight_only, weights_and_activations
from attnzoo.quant.ste import fake_quantize
from attnzoo.quant.ternary import TernaryQuantizer
from attnzoo.quant.uniform import UniformQuantizer

__all__ = ["ActivationQuantizer", "ActivationSpec", "FloatQuantizer", "Granularity", "Int8Linear", "MinMaxObserver",
           "Observer", "PackedLinear", "PercentileObserver", "QParams", "QuantLinear", "QuantizedTensor",
           "Quantizer", "Recipe", "Rule", "RunningMinMaxObserver", "TernaryQuantizer", "UniformQuantizer",
           "calibrate", "fake_quantize", "int8_linear", "pack", "prepare", "quantizable_layers", "quantize",
           "storage_bytes", "weight_only", "weight_only_int8_linear", "weights_and_activations"]

"""Post-training quantization methods built on :mod:`attnzoo.quant`: GPTQ and its round-to-nearest baseline
(:mod:`~attnzoo.quant.methods.gptq`), sharing the layer-by-layer calibration driver
(:mod:`~attnzoo.quant.methods.layerwise`) and the input Hessian (:mod:`~attnzoo.quant.methods.hessian`)."""

from attnzoo.quant.methods.gptq import GPTQOptions, GPTQResult, calibration_loss, gptq, gptq_quantize, rtn_quantize
from attnzoo.quant.methods.hessian import HessianAccumulator, normalize_token_weights
from attnzoo.quant.methods.layerwise import attention_mask_weights, quantize_layerwise

__all__ = ["GPTQOptions", "GPTQResult", "HessianAccumulator", "attention_mask_weights", "calibration_loss", "gptq",
           "gptq_quantize", "normalize_token_weights", "quantize_layerwise", "rtn_quantize"]

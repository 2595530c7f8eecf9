"""Post-training quantization methods built on :mod:`attnzoo.quant`: GPTQ and its round-to-nearest baseline
(:mod:`~attnzoo.quant.methods.gptq`), RSQ (:mod:`~attnzoo.quant.methods.rsq`: randomized Hadamard rotations,
:mod:`~attnzoo.quant.methods.hadamard`, and attention-concentration token importance), LLM-FP4
(:mod:`~attnzoo.quant.methods.llm_fp4`: format and exponent-bias search, pre-shifted biases), sharing the
layer-by-layer calibration driver (:mod:`~attnzoo.quant.methods.layerwise`) and the input Hessian
(:mod:`~attnzoo.quant.methods.hessian`)."""

from attnzoo.quant.methods.gptq import GPTQOptions, GPTQResult, calibration_loss, gptq, gptq_quantize, rtn_quantize
from attnzoo.quant.methods.hadamard import RandomizedHadamard, hadamard_matrix
from attnzoo.quant.methods.hessian import HessianAccumulator, normalize_token_weights
from attnzoo.quant.methods.layerwise import attention_mask_weights, quantize_layerwise
from attnzoo.quant.methods.llm_fp4 import FP4Options, llm_fp4
from attnzoo.quant.methods.rsq import attention_concentration, attention_received, hf_attentions, rotate, rsq

__all__ = ["FP4Options", "GPTQOptions", "GPTQResult", "HessianAccumulator", "RandomizedHadamard",
           "attention_concentration", "attention_mask_weights", "attention_received", "calibration_loss", "gptq",
           "gptq_quantize", "hadamard_matrix", "hf_attentions", "llm_fp4", "normalize_token_weights",
           "quantize_layerwise", "rotate", "rsq", "rtn_quantize"]

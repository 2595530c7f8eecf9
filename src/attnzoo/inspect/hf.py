"""Attention maps of Hugging Face ``transformers`` models, through their own ``output_attentions``.

A model loaded with ``attn_implementation="eager"`` returns each layer's ``(B, H, N, N)`` probabilities when
called with ``output_attentions=True``; :func:`hf_attentions` asks for them without changing the model and refuses,
saying why, a model whose attention implementation does not return them (SDPA and FlashAttention kernels never
form the matrix: load the model with ``attn_implementation="eager"``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def hf_attentions(model: nn.Module, **inputs: Any) -> tuple[torch.Tensor, ...]:  # noqa: ANN401
    """``model(**inputs, output_attentions=True).attentions``: one ``(B, H, N, N)`` tensor per layer, first
    layer first, run without gradients. Feed the result to :func:`attnzoo.inspect.attention_rollout` or
    :func:`attnzoo.inspect.attention_flow`.

    ``TypeError`` for a model that is not a ``transformers`` ``PreTrainedModel``; ``ValueError`` for one whose
    attention implementation is not ``"eager"`` or that returns no attentions.
    """
    config = getattr(model, "config", None)
    if not isinstance(model, nn.Module) or config is None or not hasattr(config, "_attn_implementation"):
        raise TypeError(f"model must be a transformers PreTrainedModel (with a config), got {type(model).__name__}")
    implementation = config._attn_implementation
    if implementation != "eager":
        raise ValueError(f"model's attention implementation is {implementation!r}; expected 'eager', the one that "
                         "forms the attention probabilities (load it with from_pretrained(..., "
                         "attn_implementation='eager'))")
    if "output_attentions" in inputs:
        raise ValueError("inputs must not set output_attentions: hf_attentions sets it")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    attentions = getattr(out, "attentions", None)
    if not attentions:
        raise ValueError(f"{type(model).__name__} returned no attentions with output_attentions=True")
    return tuple(attentions)

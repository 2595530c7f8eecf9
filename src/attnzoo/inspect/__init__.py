"""Seeing attention: capture the attention maps of any registered mixer inside a model without changing it
(:func:`capture_attention`), those of Hugging Face models (:func:`hf_attentions`), attention rollout and attention
flow (Abnar & Zuidema 2020, arXiv 2005.00928), and heat-map plots over images and tokens (:mod:`.plots`, the
optional ``[plot]`` extra). ``attnzoo inspect`` draws one picture per spatial mixer of an ``attnzoo compare`` run
(:mod:`.figure`)."""

from attnzoo.inspect.capture import AttentionCapture, AttentionMap, attention_map_support, capture_attention
from attnzoo.inspect.flow import attention_flow, raw_attention_flow
from attnzoo.inspect.hf import hf_attentions
from attnzoo.inspect.rollout import attention_rollout, layer_attentions, token_heat

__all__ = ["AttentionCapture", "AttentionMap", "attention_flow", "attention_map_support", "attention_rollout",
           "capture_attention", "hf_attentions", "layer_attentions", "raw_attention_flow", "token_heat"]

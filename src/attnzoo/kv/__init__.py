"""KV-cache policies (issue 14): which cached keys and values a causal LM keeps, and at what precision, on
attnzoo's models and on Hugging Face ``transformers`` models. See ``docs/kv.md``.

- :mod:`attnzoo.kv.policies`: :class:`SlidingWindow`, :class:`StreamingLLM`, :class:`H2O`, :class:`ZipVL`;
- :mod:`attnzoo.kv.state`: the per-layer step both integrations run (prefill compression, decode eviction);
- :mod:`attnzoo.kv.reference`: the readable oracle;
- :mod:`attnzoo.kv.quantization`: ZipVL's mixed-precision K/V;
- :func:`apply_policy`: the context manager, for an attnzoo model or a transformers PreTrainedModel.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from attnzoo.kv.attnzoo_model import PolicyKVCache, apply_policy_attnzoo
from attnzoo.kv.policies import H2O, KVPolicy, SlidingWindow, StreamingLLM, ZipVL, adaptive_count, keep_count
from attnzoo.kv.reference import reference_policy_attention
from attnzoo.kv.state import LayerState

__all__ = ["H2O", "KVPolicy", "LayerState", "PolicyKVCache", "SlidingWindow", "StreamingLLM", "ZipVL",
           "adaptive_count", "apply_policy", "keep_count", "reference_policy_attention"]


@contextmanager
def apply_policy(model: nn.Module, policy: KVPolicy) -> Iterator[Any]:
    """``policy`` on ``model``'s KV cache inside the block: a transformers ``PreTrainedModel`` yields an
    :class:`~attnzoo.kv.hf.HFPolicySession` (``cache=kv.new_cache()``); an attnzoo model yields the model, whose
    ``new_cache`` / ``generate`` then use the policy. Hooks are removed on exit, also after an exception."""
    if hasattr(model, "set_attn_implementation"):
        from attnzoo.kv.hf import apply_policy_hf

        with apply_policy_hf(model, policy) as session:
            yield session
    else:
        with apply_policy_attnzoo(model, policy) as hooked:
            yield hooked

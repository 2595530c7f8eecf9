"""KV policies on Hugging Face ``transformers`` causal LMs (tested with transformers 5.24: Llama, GPT-2), fitted
to kvpress' conventions: a context manager that installs forward hooks on the attention modules and removes them
on exit, compression after each attention forward (so a call's own attention is exact).

Three pieces, all undone when the ``with`` block ends, also after an exception:

- :class:`PolicyCache`, a ``DynamicCache`` whose layers the policy compresses (:class:`~attnzoo.kv.state.
  LayerState`, one per layer). ``get_seq_length`` returns the tokens *consumed*, not held, so the model's
  default positions (RoPE angles, learned position embeddings) continue the sequence after evictions; the
  layers' own lengths (held tokens) size the masks.
- an attention function registered with ``AttentionInterface`` as :data:`IMPLEMENTATION` (the model's
  ``attn_implementation`` is switched to it, then back): dense softmax over the held keys and the new ones under
  the bottom-right causal mask, returning the probabilities (as ``eager`` does) for the policies that read
  attention. It refuses padding (a mask hiding a key from the last query) and the kwargs it cannot honour
  (sinks, softcapping), naming them.
- a forward hook on every self-attention module (a module with an integer ``layer_idx`` and ``is_causal``) that
  hands the call's probabilities to the cache's policy.

kvpress 0.5.5 hooks the same way but reads ``past_key_values`` and ``cache_position`` from the attention
module's kwargs, which transformers 5.x renamed to ``cache`` and dropped; its presses therefore cannot run here,
and the agreement tests call their ``score`` and ``compress`` methods on the tensors a model produced.

>>> with apply_policy(model, H2O(budget=256)) as kv:   # doctest: +SKIP
...     cache = kv.new_cache()
...     logits = model(prompt, cache=cache).logits           # prefill, then compression to 256 tokens
...     step = model(next_token, cache=cache).logits         # decode: one token in, the lowest-scored out
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnzoo.kv.attnzoo_model import causal_probabilities
from attnzoo.kv.policies import KVPolicy
from attnzoo.kv.state import LayerState
from attnzoo.registry import NotSupportedError

__all__ = ["IMPLEMENTATION", "HFPolicySession", "PolicyCache", "apply_policy_hf", "attention_forward"]

IMPLEMENTATION = "attnzoo_kv"
"""The name the attention function is registered under in transformers' ``AttentionInterface``."""
_UNSUPPORTED_KWARGS = ("position_bias", "softcap", "s_aux", "sinks")
_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    import transformers
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    transformers.AttentionInterface.register(IMPLEMENTATION, attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    _REGISTERED = True


def attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN401
    """transformers' attention-function signature: ``(B, H, T, D)`` query, ``(B, Hkv, L, D)`` held-plus-new keys
    and values -> ``((B, T, H, Dv), (B, H, T, L) probabilities)``, bottom-right causal, no padding, no dropout."""
    present = [name for name in _UNSUPPORTED_KWARGS if kwargs.get(name) is not None]
    if present:
        raise NotSupportedError(f"{type(module).__name__}: a KV policy's attention cannot take the model's "
                                f"{', '.join(present)}")
    if dropout:
        raise NotSupportedError(f"attention dropout={dropout}: KV policies run at inference; call model.eval()")
    if attention_mask is not None:
        last = attention_mask[..., -1, :]
        hidden = ~last if last.dtype == torch.bool else last < 0
        if bool(hidden.any()):
            raise NotSupportedError("an attention mask hides keys from the last query (padding): KV policies "
                                    "continue one unpadded sequence per batch row; pass no attention_mask")
    probs = causal_probabilities(query, key, scaling)
    value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
    out = probs.to(value.dtype) @ value
    return out.transpose(1, 2).contiguous(), probs


class PolicyCache:
    """Built by :meth:`HFPolicySession.new_cache` (a subclass of transformers' ``DynamicCache`` made there, so
    that importing this module does not need transformers): see the module docstring."""


@functools.cache
def _policy_cache_class() -> type:
    """The ``DynamicCache`` subclass, made once, on first use."""
    from transformers import DynamicCache

    class _PolicyCache(DynamicCache, PolicyCache):
        def __init__(self, policy: KVPolicy, config: Any) -> None:  # noqa: ANN401
            super().__init__(config=config)
            self.policy = policy
            self.states: dict[int, LayerState] = {}

        def get_seq_length(self, layer_idx: int = 0) -> int:
            state = self.states.get(layer_idx)
            return 0 if state is None else state.length

        def compress(self, layer_idx: int, probs: torch.Tensor | None) -> None:
            """Run the policy on layer ``layer_idx`` after its attention (``probs`` its probabilities)."""
            layer = self.layers[layer_idx]
            state = self.states.setdefault(layer_idx, LayerState(self.policy))
            layer.keys, layer.values = state.step(layer.keys, layer.values, probs)

        def packed_nbytes(self) -> int:
            """Bytes of the held keys and values at their bit widths (whole batch, all layers)."""
            return sum(state.packed_nbytes(self.layers[i].keys.shape[-1], self.layers[i].values.shape[-1],
                                           self.layers[i].keys.element_size()) for i, state in self.states.items())

    return _PolicyCache


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    if not hasattr(model, "set_attn_implementation") or not hasattr(model, "config"):
        raise NotSupportedError(f"{type(model).__name__} is not a transformers PreTrainedModel (no "
                                "set_attn_implementation); for attnzoo models use attnzoo.kv.apply_policy")
    found = [m for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)
             and getattr(m, "is_causal", False) is True]
    found = [m for m in found if not any(m is not other and m in set(other.modules()) for other in found)]
    if not found:
        raise NotSupportedError(f"{type(model).__name__}: no causal self-attention module (one with an integer "
                                "layer_idx and is_causal=True) to hook; KV policies need a decoder with a KV cache")
    return found


@dataclass
class HFPolicySession:
    """What ``with apply_policy_hf(model, policy) as kv`` yields: :meth:`new_cache` makes the cache to pass as
    ``model(..., cache=...)``."""

    model: nn.Module
    policy: KVPolicy

    def new_cache(self) -> Any:  # noqa: ANN401
        """An empty :class:`PolicyCache` for this model and policy."""
        return _policy_cache_class()(self.policy, self.model.config)


def _hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:  # noqa: ANN401
    cache = kwargs.get("cache")
    if cache is None:
        return output
    if not isinstance(cache, PolicyCache):
        raise NotSupportedError(f"cache={type(cache).__name__} inside apply_policy: pass the session's cache "
                                "(cache=kv.new_cache()), whose layers the policy compresses")
    cache.compress(module.layer_idx, output[1])
    return output


@contextmanager
def apply_policy_hf(model: nn.Module, policy: KVPolicy) -> Iterator[HFPolicySession]:
    """Run ``policy`` on ``model``'s KV cache inside the block (module docstring)."""
    if not isinstance(policy, KVPolicy):
        raise TypeError(f"policy={policy!r}: expected a KVPolicy (SlidingWindow, StreamingLLM, H2O, ZipVL)")
    modules = _attention_modules(model)
    _register()
    previous = model.config._attn_implementation
    hooks = []
    try:
        model.set_attn_implementation(IMPLEMENTATION)
        hooks = [m.register_forward_hook(_hook, with_kwargs=True) for m in modules]
        yield HFPolicySession(model, policy)
    finally:
        for hook in hooks:
            hook.remove()
        model.set_attn_implementation(previous)

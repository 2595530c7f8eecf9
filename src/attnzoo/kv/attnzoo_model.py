"""KV policies on attnzoo's :class:`~attnzoo.models.CausalLanguageModel` (and any model whose blocks' mixers are
:class:`~attnzoo.layers.SoftmaxAttention` layers).

Inside ``with apply_policy_attnzoo(model, policy):`` (or :func:`attnzoo.kv.apply_policy`) each softmax mixer makes a
:class:`PolicyKVCache` from ``new_cache`` (so ``model.new_cache``, :func:`~attnzoo.models.generation.prefill` and
``model.generate`` use the policy unchanged), and its ``attend`` reports the call's queries to that cache: the cache
computes the attention probabilities it needs (``softmax(q kᵀ · scale)`` under the bottom-right causal mask, the op's
own), then runs the policy (:class:`~attnzoo.kv.state.LayerState`). The call's own attention is the layer's exact op
over everything held plus the new tokens; positions come from the model cache's ``length``, so evicting keys never
shifts the learned position embeddings. The instance attributes are removed on exit, also after an exception.

Only mixers whose attention is plain softmax (``SoftmaxAttention``'s own ``attend``: not the clipped or gated
variants, whose probabilities differ) can be hooked; another mixer is refused with
:class:`~attnzoo.registry.NotSupportedError` naming it.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from attnzoo.kv.policies import KVPolicy
from attnzoo.kv.state import LayerState
from attnzoo.layers.cache import KVCache, layer_place
from attnzoo.layers.softmax import SoftmaxAttention
from attnzoo.registry import NotSupportedError

__all__ = ["PolicyKVCache", "apply_policy_attnzoo", "causal_probabilities"]


def causal_probabilities(query: torch.Tensor, key: torch.Tensor, scale: float | None) -> torch.Tensor:
    """``softmax(q kᵀ · scale)`` of ``(B, H, T, D)`` queries over ``(B, Hkv, L, D)`` keys (query head ``i`` reads
    K/V head ``i // (H / Hkv)``), query ``t`` seeing keys ``<= L − T + t`` (bottom-right causal) -> ``(B, H, T, L)``.
    Computed in float32 or wider."""
    t, length = query.shape[2], key.shape[2]
    key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    dtype = torch.promote_types(query.dtype, torch.float32)
    scores = query.to(dtype) @ key.to(dtype).transpose(-1, -2) * (query.shape[-1] ** -0.5 if scale is None else scale)
    visible = torch.arange(length - t, length, device=query.device)[:, None] >= torch.arange(length,
                                                                                            device=query.device)
    return scores.masked_fill(~visible, -math.inf).softmax(dim=-1)


class PolicyKVCache(KVCache):
    """A :class:`~attnzoo.layers.cache.KVCache` whose held tokens a :class:`~attnzoo.kv.KVPolicy` chooses after each
    call. :meth:`update` returns every held key and the new ones (the call attends to all of them); :meth:`observe`,
    called with the call's queries, runs the policy. ``capacity`` is the budget once the first call set it;
    ``packed_nbytes`` the held keys and values at their bit widths (ZipVL's mixed precision)."""

    def __init__(self, layer: nn.Module, policy: KVPolicy, batch_size: int, num_heads: int, key_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, num_heads, key_dim, dtype=dtype, device=device, max_length=max_length)
        self.state = LayerState(policy)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def capacity(self) -> int | None:
        return self.state.budget

    @property
    def packed_nbytes(self) -> int:
        return self.state.packed_nbytes(self.key_dim, self.value_dim, self.keys.element_size())

    def _keep(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self._pending is not None:
            raise RuntimeError("PolicyKVCache: the previous call's queries were never observed; use the cache only "
                               "inside attnzoo.kv.apply_policy(model, policy)")
        self._pending = keys, values

    def observe(self, query: torch.Tensor, scale: float | None) -> None:
        """Run the policy on the keys and values of the last :meth:`update`, given that call's ``query``
        ``(B, H, T, D)`` and the layer's ``scale``."""
        if self._pending is None:
            raise RuntimeError("PolicyKVCache.observe without a preceding update")
        keys, values = self._pending
        self._pending = None
        probs = causal_probabilities(query, keys, scale) if self.state.policy.needs_attention else None
        self.keys, self.values = self.state.step(keys, values, probs)


def _mixers(model: nn.Module) -> list[nn.Module]:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not all(hasattr(block, "mixer") for block in blocks):
        raise NotSupportedError(f"{type(model).__name__} has no blocks[i].mixer: apply_policy hooks attnzoo models "
                                "built from attnzoo.models.Block (CausalLanguageModel); for a transformers model "
                                "use a transformers PreTrainedModel")
    mixers = [block.mixer for block in blocks]
    unable = sorted({type(m).__name__ for m in mixers
                     if not isinstance(m, SoftmaxAttention) or type(m).attend is not SoftmaxAttention.attend})
    if unable:
        raise NotSupportedError(f"{type(model).__name__}: a KV policy hooks softmax attention; mixer "
                                f"{', '.join(unable)} attends otherwise (the policies score softmax probabilities)")
    return mixers


@contextmanager
def apply_policy_attnzoo(model: nn.Module, policy: KVPolicy) -> Iterator[nn.Module]:
    """Within the block, the softmax mixers of ``model`` decode with ``policy`` (module docstring); yields the
    model."""
    if not isinstance(policy, KVPolicy):
        raise TypeError(f"policy={policy!r}: expected a KVPolicy (SlidingWindow, StreamingLLM, H2O, ZipVL)")
    mixers = _mixers(model)
    patched = [m for m in mixers if "new_cache" in vars(m) or "attend" in vars(m)]
    if patched:
        raise RuntimeError(f"{type(model).__name__} already runs a KV policy (nested apply_policy)")
    try:
        for mixer in mixers:
            mixer._kv_caches = weakref.WeakSet()
            mixer.new_cache = _new_cache(mixer, policy)
            mixer.attend = _attend(mixer)
        yield model
    finally:
        for mixer in mixers:
            for name in ("new_cache", "attend", "_kv_caches"):
                vars(mixer).pop(name, None)


def _new_cache(mixer: SoftmaxAttention, policy: KVPolicy) -> Any:  # noqa: ANN401
    def new_cache(batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> PolicyKVCache:
        if not mixer.is_causal:
            raise ValueError(f"{type(mixer).__name__} with is_causal=False cannot decode with a cache")
        dtype, device = layer_place(mixer, dtype, device)
        cache = PolicyKVCache(mixer, policy, batch_size, mixer.num_heads, mixer.head_dim, dtype, device, max_length)
        mixer._kv_caches.add(cache)
        return cache
    return new_cache


def _attend(mixer: SoftmaxAttention) -> Any:  # noqa: ANN401
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, x: torch.Tensor, **options: Any) -> torch.Tensor:
        out = SoftmaxAttention.attend(mixer, q, k, v, x, **options)
        for cache in list(mixer._kv_caches):  # the cache whose update returned these keys
            if cache._pending is not None and cache._pending[0] is k:
                cache.observe(q, mixer.scale)
        return out
    return attend

"""Decoding caches: what a token-mixer layer keeps between calls so that it can consume a sequence in pieces.

The protocol (as HF transformers' ``Cache`` objects and fla's recurrent ``past_key_values``): a layer that can
decode defines ``new_cache(batch_size, dtype=None, device=None, max_length=None)`` and takes
``forward(x, cache=cache)``; with a cache, ``x`` ``(B, T, C)`` holds the *next* ``T`` tokens after the ones the
cache has seen, the layer updates the cache and returns the output of those ``T`` tokens, equal to the last
``T`` rows of a full forward over the whole prefix (exactly, up to float rounding: the same keys and values
enter the same softmax or the same recurrence). Three caches cover the library's causal ``(B, N, C)`` mixers:

* :class:`KVCache`: every past key and value, ``(B, H, L, Dk)`` / ``(B, H, L, Dv)`` with the layer's own head
  count and dims (softmax attention; grouped or decoupled K/V layers build it with their ``H_kv``, ``Dk``,
  ``Dv``). ``bytes_per_token = H (Dk + Dv) · itemsize`` per sequence (``2 H D`` · itemsize for MHA).
* :class:`SlidingWindowKVCache`: only the keys a later query can still see under the causal window mask of
  :mod:`attnzoo.ops.sliding_window` (query ``i`` sees ``i - window < j <= i`` and the first ``num_sink_tokens``):
  the sink tokens and the last ``window - 1`` tokens, trimmed after each call. Memory is capped at
  ``num_sink_tokens + window - 1`` tokens.
* :class:`BlockLocalKVCache`: the keys of the current block of a block-local layer
  (:mod:`attnzoo.ops.block_local`, the Block Transformer's token decoder): a query sees only its own block, so
  the keys of a finished block are dropped. Memory is capped at ``block_size - 1`` tokens.
* :class:`RecurrentStateCache`: the state of a recurrent form (lightning / linear attention's
  ``(H, D, E)``, the LMU memory), passed as ``initial_state`` and replaced by ``output_final_state``. Constant
  in length: ``bytes_per_token = 0``, ``state_bytes`` per sequence.

Every cache knows the layer it was made for, its ``batch_size``, ``dtype``, ``device``, ``length`` (tokens
consumed) and optional ``max_length``, and :meth:`LayerCache.check` refuses, naming the value given and the
one expected, another layer, another batch size, dtype or device, masks (padding, packing) it cannot carry,
and tokens past ``max_length``. Memory: ``nbytes`` (held now, the whole batch), ``nbytes_at(length)`` (held
after ``length`` tokens), ``bytes_per_token``, ``capacity`` and ``state_bytes`` (per sequence).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
from torch import nn

from attnzoo.registry import FLOAT_DTYPES
from attnzoo.validation import check_int, check_optional_int

__all__ = ["BlockLocalKVCache", "KVCache", "LayerCache", "RecurrentStateCache", "SlidingWindowKVCache", "can_decode", "check_cache",
           "layer_place", "recurrent_options", "recurrent_output"]


def can_decode(layer: nn.Module | type[nn.Module]) -> bool:
    """Whether ``layer`` (a layer or its class) declares the decoding protocol (a ``new_cache`` method). A
    declaring layer may still refuse in ``new_cache`` for a configuration that cannot decode (a bidirectional
    ``is_causal=False`` layer)."""
    return callable(getattr(layer, "new_cache", None))


def layer_place(layer: nn.Module, dtype: torch.dtype | None, device: torch.device | str | None
                ) -> tuple[torch.dtype, torch.device]:
    """``dtype`` / ``device`` of a new cache: the given ones, else those of the layer's first parameter (float32
    on CPU for a layer without parameters)."""
    parameter = next(layer.parameters(), None)
    dtype = dtype if dtype is not None else parameter.dtype if parameter is not None else torch.float32
    device = device if device is not None else parameter.device if parameter is not None else "cpu"
    return dtype, torch.device(device)


class LayerCache:
    """What every decoding cache has: the layer it was made for, ``batch_size``, ``dtype``, ``device``,
    ``length`` (tokens consumed so far), ``max_length`` (``None``: unbounded) and the memory accounting;
    subclasses hold the tensors and say what one token costs."""

    def __init__(self, layer: nn.Module, batch_size: int, dtype: torch.dtype, device: torch.device | str,
                 max_length: int | None = None) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer={type(layer).__name__}: expected the nn.Module the cache is made for")
        self.batch_size = check_int("batch_size", batch_size)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype={dtype!r}: expected a floating dtype "
                            f"({', '.join(sorted(str(d) for d in FLOAT_DTYPES))})")
        self.dtype, self.device = dtype, torch.device(device)
        self.max_length = check_optional_int("max_length", max_length)
        self.length = 0
        self.layer_name = type(layer).__name__
        self._layer = weakref.ref(layer)

    # -- memory ------------------------------------------------------------------------------------------
    @property
    def bytes_per_token(self) -> int:
        """Bytes one cached token costs per sequence (0 for a recurrent state)."""
        raise NotImplementedError

    @property
    def state_bytes(self) -> int:
        """Bytes per sequence that do not depend on the length (a recurrent state; 0 for K/V caches)."""
        return 0

    @property
    def capacity(self) -> int | None:
        """The most tokens the cache holds (``None``: all of them)."""
        return None

    def tokens_held(self, length: int) -> int:
        """How many tokens the cache holds after consuming ``length`` tokens."""
        check_int("length", length, 0)
        return length if self.capacity is None else min(length, self.capacity)

    def nbytes_at(self, length: int) -> int:
        """Bytes the cache holds (whole batch) once it has consumed ``length`` tokens:
        ``batch_size · (state_bytes + bytes_per_token · tokens_held(length))``."""
        return self.batch_size * (self.state_bytes + self.bytes_per_token * self.tokens_held(length))

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors the cache holds now (whole batch)."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def tensors(self) -> list[torch.Tensor]:
        """The tensors the cache holds."""
        raise NotImplementedError

    # -- checks ------------------------------------------------------------------------------------------
    @property
    def layer(self) -> nn.Module | None:
        """The layer the cache was made for (``None`` once that layer is gone)."""
        return self._layer()

    def check(self, layer: nn.Module, x: torch.Tensor) -> None:
        """Raise unless ``x`` ``(B, T, C)`` can be the next ``T`` tokens of this cache in ``layer``: the layer
        the cache was made for, ``B == batch_size``, its dtype (not checked under autocast, where the layer
        computes in autocast's dtype: the tensors stored are then checked) and device, ``T >= 1``, and
        ``length + T <= max_length``."""
        if self.layer is not layer:
            raise ValueError(f"cache was made for another layer (a {self.layer_name} at "
                             f"{hex(id(self.layer)) if self.layer is not None else 'a deleted layer'}); expected "
                             f"a cache of this {type(layer).__name__} (make one with layer.new_cache(...))")
        if x.shape[0] != self.batch_size:
            raise ValueError(f"input has batch size {x.shape[0]} (shape {tuple(x.shape)}); the cache was made for "
                             f"batch_size={self.batch_size}")
        if x.dtype != self.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"input dtype {x.dtype}; the cache was made for dtype={self.dtype}")
        if x.device != self.device:
            raise ValueError(f"input is on {x.device}; the cache was made for device={self.device}")
        if x.shape[1] < 1:
            raise ValueError(f"input has shape {tuple(x.shape)}: expected at least one new token (T >= 1)")
        if self.max_length is not None and self.length + x.shape[1] > self.max_length:
            raise ValueError(f"{x.shape[1]} new tokens after the {self.length} the cache holds exceed its "
                             f"max_length={self.max_length}")

    def _check_stored(self, name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
        """A tensor to store: the cache's dtype and device and ``shape`` (``-1`` = any)."""
        if tensor.dtype != self.dtype or tensor.device != self.device:
            raise TypeError(f"{name} is {tensor.dtype} on {tensor.device}; the cache stores {self.dtype} on "
                            f"{self.device} (under torch.autocast make the cache with autocast's dtype)")
        if tensor.dim() != len(shape) or any(s not in (-1, t) for s, t in zip(shape, tensor.shape)):
            expected = ", ".join("*" if s == -1 else str(s) for s in shape)
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}; the cache holds ({expected})")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(layer={self.layer_name}, batch_size={self.batch_size}, dtype={self.dtype}, "
                f"device={self.device}, length={self.length}, max_length={self.max_length}, nbytes={self.nbytes})")


def check_cache(layer: nn.Module, cache: Any, kind: type[LayerCache], x: torch.Tensor, **masks: Any) -> None:
    """The check a layer runs before using ``cache``: a ``kind`` cache made for ``layer`` that takes ``x``
    (:meth:`LayerCache.check`), and no key padding / packed sequences (``masks`` given not ``None``): a cache
    continues one unpadded sequence per batch row."""
    if not isinstance(cache, kind):
        raise TypeError(f"cache={type(cache).__name__}: {type(layer).__name__} decodes with a {kind.__name__} "
                        f"(make one with layer.new_cache(...))")
    given = [name for name, mask in masks.items() if mask is not None]
    if given:
        raise ValueError(f"{', '.join(given)} with a cache: a cache continues one unpadded sequence per batch row; "
                         "pass the masks to a forward without a cache")
    cache.check(layer, x)


class KVCache(LayerCache):
    """All past keys ``(B, H, L, Dk)`` and values ``(B, H, L, Dv)`` of a softmax-attention layer.

    :meth:`update` appends the new ``(B, H, T, ·)`` keys and values and returns all of them, the keys a causal
    (bottom-right aligned) attention of the ``T`` new queries takes: what HF's ``DynamicCache.update`` does. ``H``
    is the layer's K/V head count (fewer than its query heads for grouped K/V), ``key_dim`` / ``value_dim`` its
    K and V head dims. ``bytes_per_token = H (Dk + Dv) · itemsize``. Appending concatenates (O(L) copy per
    call, as ``DynamicCache``).
    """

    def __init__(self, layer: nn.Module, batch_size: int, num_heads: int, key_dim: int, value_dim: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, dtype, device, max_length)
        self.num_heads = check_int("num_heads", num_heads)
        self.key_dim = check_int("key_dim", key_dim)
        self.value_dim = check_int("value_dim", key_dim if value_dim is None else value_dim)
        self.keys = torch.empty(batch_size, num_heads, 0, self.key_dim, dtype=dtype, device=self.device)
        self.values = torch.empty(batch_size, num_heads, 0, self.value_dim, dtype=dtype, device=self.device)

    @property
    def bytes_per_token(self) -> int:
        return self.num_heads * (self.key_dim + self.value_dim) * self.keys.element_size()

    def tensors(self) -> list[torch.Tensor]:
        return [self.keys, self.values]

    def update(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``key`` ``(B, H, T, Dk)`` and ``value`` ``(B, H, T, Dv)``; return the keys and values to attend
        to (every past token, then these ``T``) and count the ``T`` tokens as consumed."""
        b, h = self.batch_size, self.num_heads
        self._check_stored("key", key, (b, h, -1, self.key_dim))
        self._check_stored("value", value, (b, h, key.shape[2], self.value_dim))
        keys, values = torch.cat([self.keys, key], dim=2), torch.cat([self.values, value], dim=2)
        self.length += key.shape[2]
        self._keep(keys, values)
        return keys, values

    def _keep(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """What to hold for the next call, given every key and value the last call attended to."""
        self.keys, self.values = keys, values


class SlidingWindowKVCache(KVCache):
    """The keys and values a causal sliding-window layer still needs: the first ``num_sink_tokens`` tokens and
    the last ``window - 1`` (:func:`attnzoo.ops.sliding_window_attention`: query ``i`` sees the keys
    ``i - window < j <= i`` and the sinks ``j < num_sink_tokens``).

    :meth:`update` returns the held keys followed by the new ones, then trims. Exact with respect to the op's
    mask, which reads key *indices* (bottom-right aligned): the recent keys are contiguous with the new ones,
    so their index distances to each new query are their position distances, and the sinks are the first
    ``min(num_sink_tokens, length)`` indices, which the op treats as sinks; a gap between sinks and recent
    keys only moves sinks, visible anyway, closer. Holds at most ``capacity = num_sink_tokens + window - 1``
    tokens between calls (Mistral's rolling buffer holds ``window``, the current token included).
    """

    def __init__(self, layer: nn.Module, batch_size: int, num_heads: int, key_dim: int, window: int,
                 num_sink_tokens: int = 0, value_dim: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, num_heads, key_dim, value_dim, dtype, device, max_length)
        self.window = check_int("window", window)
        self.num_sink_tokens = check_int("num_sink_tokens", num_sink_tokens, 0)
        self.positions = torch.empty(0, dtype=torch.long)
        """The positions (in the whole sequence) of the held tokens, on the CPU."""

    @property
    def capacity(self) -> int:
        return self.num_sink_tokens + self.window - 1

    def _keep(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        added = keys.shape[2] - len(self.positions)  # the T new tokens, at positions length - T .. length - 1
        positions = torch.cat([self.positions, torch.arange(self.length - added, self.length)])
        keep = (positions < self.num_sink_tokens) | (positions > self.length - self.window)
        index = keep.nonzero().squeeze(1)
        self.positions = positions[index]
        index = index.to(self.device)
        self.keys, self.values = keys.index_select(2, index), values.index_select(2, index)


class BlockLocalKVCache(KVCache):
    """The keys and values a block-local layer still needs: those of the current, unfinished block
    (:func:`attnzoo.ops.block_local_attention`: query ``i`` sees only keys of its own block of ``block_size``
    positions).

    :meth:`update` returns the held keys followed by the new ones, then keeps the last ``length % block_size``.
    Exact with respect to the op's mask, which counts blocks from key index 0 (bottom-right aligned queries): the
    held keys start at the current block's first position, so the op's blocks are the sequence's. With a
    bidirectional prefix (``num_prefix_tokens > 1``) a call must not end inside a block's prefix: the outputs of
    the prefix positions read the later prefix positions (:meth:`check` refuses it). Holds at most
    ``capacity = block_size - 1`` tokens between calls.
    """

    def __init__(self, layer: nn.Module, batch_size: int, num_heads: int, key_dim: int, block_size: int,
                 num_prefix_tokens: int = 0, value_dim: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, num_heads, key_dim, value_dim, dtype, device, max_length)
        self.block_size = check_int("block_size", block_size)
        self.num_prefix_tokens = check_int("num_prefix_tokens", num_prefix_tokens, 0)

    @property
    def capacity(self) -> int:
        return self.block_size - 1

    def tokens_held(self, length: int) -> int:
        """The tokens of the unfinished block after ``length`` tokens: ``length mod block_size``."""
        return check_int("length", length, 0) % self.block_size

    def check(self, layer: nn.Module, x: torch.Tensor) -> None:
        """:meth:`LayerCache.check`, and no call that ends inside a bidirectional prefix."""
        super().check(layer, x)
        end = (self.length + x.shape[1]) % self.block_size
        if self.num_prefix_tokens > 1 and 0 < end < self.num_prefix_tokens:
            raise ValueError(f"{x.shape[1]} new tokens after the {self.length} cached end inside a block's "
                             f"num_prefix_tokens={self.num_prefix_tokens} bidirectional prefix (position {end} of "
                             f"block_size={self.block_size}); feed each prefix whole: its outputs read all of it")

    def _keep(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        start = keys.shape[2] - self.length % self.block_size
        self.keys, self.values = keys[:, :, start:].clone(), values[:, :, start:].clone()


class RecurrentStateCache(LayerCache):
    """The recurrent state of a layer whose op takes ``initial_state`` and returns ``output_final_state``
    (lightning attention ``(B, H, D, E)``, linear attention ``(B, H, M, E + normalize)``, the LMU memory
    ``(B, 1, memory_size)``). Zeros until the first call; constant in the length:
    ``bytes_per_token = 0``, ``state_bytes = prod(state_shape) · itemsize``.
    """

    def __init__(self, layer: nn.Module, batch_size: int, state_shape: tuple[int, ...],
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, dtype, device, max_length)
        self.state_shape = tuple(check_int("state_shape", s) for s in state_shape)
        self.state = torch.zeros(batch_size, *self.state_shape, dtype=dtype, device=self.device)

    @property
    def bytes_per_token(self) -> int:
        return 0

    @property
    def state_bytes(self) -> int:
        return math.prod(self.state_shape) * self.state.element_size()

    @property
    def capacity(self) -> int:
        return 0

    def tensors(self) -> list[torch.Tensor]:
        return [self.state]

    @property
    def initial_state(self) -> torch.Tensor | None:
        """The state to start the next call from: ``None`` before the first token (the ops' zero state, so that
        a first call is the op's own no-state call)."""
        return self.state if self.length else None

    def update(self, final_state: torch.Tensor, tokens: int) -> None:
        """Store the state after ``tokens`` more tokens."""
        self._check_stored("final_state", final_state, (self.batch_size, *self.state_shape))
        self.state = final_state
        self.length += check_int("tokens", tokens)


def recurrent_options(cache: RecurrentStateCache | None) -> dict[str, Any]:
    """The state arguments a layer passes its recurrent op: none without a cache (the call is unchanged), else
    ``initial_state`` from the cache and ``output_final_state=True``."""
    return {} if cache is None else {"initial_state": cache.initial_state, "output_final_state": True}


def recurrent_output(cache: RecurrentStateCache | None, result: Any, tokens: int) -> torch.Tensor:
    """The op's output; with a cache, ``result`` is ``(out, final_state)``: the state is stored (``tokens`` more
    consumed) and ``out`` returned."""
    if cache is None:
        return result
    out, final_state = result
    cache.update(final_state, tokens)
    return out

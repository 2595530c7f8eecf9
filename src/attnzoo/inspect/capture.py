"""Capture the attention maps of the registered mixers inside any model, without changing the model.

:func:`capture_attention` is a context manager: it puts a forward hook on every module of the model that is the
layer of a registered variant (:func:`attnzoo.registry.variants`). After the layer's own forward has run (its
output goes on untouched, so the model's outputs are bit-identical), the hook runs the layer's ``forward`` a second
time on the same inputs, without gradients, with the registered ops the layer calls (the variants' functional ops
found in the module globals of the layer's classes) swapped for calls of their ``reference`` implementation with
``return_weights=True`` (any function of ``attnzoo.ops`` that takes ``impl`` and ``return_weights``, so also
the shared helpers that layers call); each such call records its ``(B, H, Nq, Nk)`` probabilities (before
dropout) as an :class:`AttentionMap`. The swap lasts only for that second forward (one thread at a time);
the random number generators and the layer's buffers (batch-norm statistics) are restored after it, so training
runs on exactly as without the capture. Every hook and swap is removed on exit, also when the model raises.

Which variants have a map: those whose op takes ``return_weights`` and whose reference declares the ``weights``
feature (:func:`attention_map_support` says, for every variant, yes or why not). Linear, kernel and recurrent
mixers (linear attention, lightning, LMU, SS2D, ...), CNN modules and mixers whose ops return no weights have none;
no substitute is invented for them (an implied linear-attention matrix is not the computation of a mixer with
feature-map normalisation, decay or gating, so it is not offered).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attnzoo.registry import Variant, get_variant, variants

_SWAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class AttentionMap:
    """One recorded attention: ``weights`` ``(B, H, Nq, Nk)`` (detached; rows sum to 1, or 0 for a query that sees
    no key) of op ``op`` called by the layer at ``module`` (its name in ``model.named_modules()``), variant
    ``variant``; ``grid`` is the layer input's token grid (``(H, W)`` for a ``(B, H, W, C)`` layer, ``(N,)`` for
    ``(B, N, C)``); ``call`` counts the op calls of that layer in one forward (0 for the first)."""

    module: str
    variant: str
    op: str
    weights: torch.Tensor
    grid: tuple[int, ...]
    call: int = 0

    @property
    def covers_grid(self) -> bool:
        """Whether queries and keys are all the layer's tokens (``Nq = Nk = prod(grid)``), so that the map can
        be drawn over the grid and rolled out across layers."""
        n = 1
        for side in self.grid:
            n *= side
        return tuple(self.weights.shape[-2:]) == (n, n)


def _returns_weights(fn: object) -> bool:
    """Whether ``fn`` is an attnzoo op (a function defined under ``attnzoo.ops``) taking ``impl`` and
    ``return_weights``."""
    if not inspect.isfunction(fn) or not fn.__module__.startswith("attnzoo.ops."):
        return False
    return _takes_weights(fn)


@functools.lru_cache(maxsize=None)
def _takes_weights(fn: Callable[..., Any]) -> bool:
    """``impl`` and ``return_weights`` among ``fn``'s parameters, or ``impl`` and ``**options`` in a module whose
    public ops take ``return_weights`` (a shared helper they forward their options to)."""
    parameters = inspect.signature(fn).parameters
    if "impl" not in parameters:
        return False
    if "return_weights" in parameters:
        return True
    forwards = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    siblings = vars(sys.modules[fn.__module__]).values()
    return forwards and any(inspect.isfunction(f) and f is not fn and f.__module__ == fn.__module__
                            and {"impl", "return_weights"} <= set(inspect.signature(f).parameters) for f in siblings)


def attention_map_support(name: str) -> str | None:
    """``None`` when :func:`capture_attention` records variant ``name``'s weights, else why not."""
    variant = get_variant(name)
    if variant.family == "cnn":
        return "a CNN attention module: channel / spatial gates, no query-key probabilities"
    if "return_weights" not in inspect.signature(variant.op).parameters:
        kind = "a linear / recurrent mixer: " if variant.family == "linear" else ""
        return f"{kind}its op {variant.op.__name__} computes no attention probabilities (no return_weights)"
    reference = variant.implementations["reference"]
    if "weights" not in reference.capabilities.features:
        return (f"its reference implementation does not return weights (linear-time form: the "
                f"{variant.family} family keeps no Nq x Nk matrix)")
    return None


def _variant_of(module: nn.Module, layers: dict[type, Variant]) -> Variant | None:
    for cls in type(module).__mro__:
        if cls in layers:
            return layers[cls]
    return None


def _op_globals(module: nn.Module) -> list[tuple[Any, str, Callable[..., Any]]]:
    """``(python module, global name, op)`` of every weights-capable op (:func:`_returns_weights`) named in the
    modules of the layer's classes: the registered op, or the shared helper a layer calls (neighborhood attention's
    ``_neighborhood_attention``)."""
    found, seen = [], set()
    for cls in type(module).__mro__:
        python_module = sys.modules.get(cls.__module__)
        if python_module is None or python_module.__name__ in seen:
            continue
        seen.add(python_module.__name__)
        for name, value in vars(python_module).items():
            if _returns_weights(value):
                found.append((python_module, name, value))
    return found


def _recording(op: Callable[..., Any], calls: list[tuple[str, torch.Tensor]]) -> Callable[..., Any]:
    signature = inspect.signature(op)
    options = None if "return_weights" in signature.parameters else next(
        name for name, p in signature.parameters.items() if p.kind is p.VAR_KEYWORD)

    def call(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        bound = signature.bind(*args, **kwargs)
        bound.arguments["impl"] = "reference"
        if options is None:
            bound.arguments["return_weights"] = True
        else:
            bound.arguments[options] = {**bound.arguments.get(options, {}), "return_weights": True}
        result = op(*bound.args, **bound.kwargs)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise RuntimeError(f"{op.__module__}.{op.__name__}(return_weights=True) returned "
                               f"{type(result).__name__}; expected (output, weights)")
        out, weights = result
        calls.append((op.__name__, weights.detach()))
        return out

    return call


@contextmanager
def _swapped(targets: list[tuple[Any, str, Callable[..., Any]]],
             calls: list[tuple[str, torch.Tensor]]) -> Iterator[None]:
    with _SWAP_LOCK:
        for python_module, name, op in targets:
            setattr(python_module, name, _recording(op, calls))
        try:
            yield
        finally:
            for python_module, name, op in targets:
                setattr(python_module, name, op)


def _devices(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[int]:
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


@dataclass
class AttentionCapture:
    """What :func:`capture_attention` yields: ``maps`` (in forward order, every forward of the block appended)
    and ``without_maps`` (module name -> why it records nothing: its variant has no map, or its forward called
    no weights-capable op directly)."""

    maps: list[AttentionMap] = field(default_factory=list)
    without_maps: dict[str, str] = field(default_factory=dict)

    def by_module(self) -> dict[str, list[AttentionMap]]:
        """The maps grouped by module name, in forward order."""
        grouped: dict[str, list[AttentionMap]] = {}
        for m in self.maps:
            grouped.setdefault(m.module, []).append(m)
        return grouped

    def clear(self) -> None:
        """Forget the maps recorded so far (between batches)."""
        self.maps.clear()


def _hook(capture: AttentionCapture, name: str, variant: Variant,
          targets: list[tuple[Any, str, Callable[..., Any]]]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:  # noqa: ANN401
        calls: list[tuple[str, torch.Tensor]] = []
        buffers = {key: b.detach().clone() for key, b in module.named_buffers()}
        with torch.random.fork_rng(devices=_devices(args, kwargs)), torch.no_grad(), _swapped(targets, calls):
            module.forward(*args, **kwargs)
        with torch.no_grad():
            for key, b in module.named_buffers():
                b.copy_(buffers[key])
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        grid = tuple(x.shape[1:-1]) if x is not None else ()
        if not calls:
            capture.without_maps[name] = (f"{type(module).__name__} called no weights-capable op from its own "
                                          "module (it computes its attention elsewhere)")
        for i, (op, weights) in enumerate(calls):
            capture.maps.append(AttentionMap(name, variant.name, op, weights, grid, i))

    return hook


@contextmanager
def capture_attention(model: nn.Module, modules: list[str] | None = None) -> Iterator[AttentionCapture]:
    """Record the attention maps of ``model``'s registered mixers while the block runs (module docstring).

    ``modules``: names (as ``model.named_modules()``) to hook; default every registered layer. A name that is
    not a registered layer of the model raises ``ValueError`` listing those that are.

    >>> import torch, attnzoo
    >>> from attnzoo.models.vision_transformer import VisionTransformer
    >>> model = VisionTransformer(mixer="softmax", depth=2, dim=32, mixer_kwargs={"num_heads": 2}).eval()
    >>> images = torch.randn(3, 1, 28, 28)
    >>> with capture_attention(model) as captured:
    ...     logits = model(images)
    >>> tuple((m.module, tuple(m.weights.shape)) for m in captured.maps)
    (('blocks.0.mixer', (3, 2, 49, 49)), ('blocks.1.mixer', (3, 2, 49, 49)))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = {v.layer: v for v in variants() if v.layer is not None}
    found = {name: (m, v) for name, m in model.named_modules() if (v := _variant_of(m, layers)) is not None}
    if modules is not None:
        unknown = [n for n in modules if n not in found]
        if unknown:
            raise ValueError(f"modules={modules!r}: {unknown} are not registered attention layers of the model; "
                             f"those are {sorted(found)}")
        found = {n: found[n] for n in modules}
    capture, handles = AttentionCapture(), []
    try:
        for name, (module, variant) in found.items():
            why = attention_map_support(variant.name)
            if why is not None:
                capture.without_maps[name] = f"{variant.name}: {why}"
                continue
            targets = _op_globals(module)
            handles.append(module.register_forward_hook(_hook(capture, name, variant, targets), with_kwargs=True))
        yield capture
    finally:
        for handle in handles:
            handle.remove()

"""The registered variants: :data:`FAMILIES`, :class:`Variant`, :func:`register`, the discovery of every
``attnzoo/ops/<mechanism>/registration.py``, lookup and :func:`create`."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from attnzoo.registry.capabilities import Implementation
from attnzoo.registry.layouts import Layout, Paper

FAMILIES: dict[str, str] = {
    "full": "full softmax attention (the baseline every family is measured against)",
    "local": "local and windowed attention",
    "linear": "linear, kernel and recurrent attention",
    "sparse": "content-sparse, hierarchical and global-token attention",
    "heads": "head structure and softmax variants (shared K/V heads, gated heads, clipped softmax, positional gates)",
    "cnn": "CNN attention modules ((B, C, H, W) in and out)",
}
"""The families, in the order ``attnzoo list``, the README and the reports show them, with what they are."""


@dataclass
class Variant:
    """A registered mechanism: what the library needs at run time.

    ``op`` is the public functional op (it validates, dispatches and accepts ``impl=``) with inputs in
    ``layout``; ``implementations`` in ``auto`` priority order, a ``"reference"`` among them; ``causal``: the
    variant can run causally (it is always causal, or has an ``is_causal`` option), so that no output reads a
    later token. ``layer`` is the ``nn.Module`` that :func:`attnzoo.create` builds with ``layer_defaults``, its
    input in ``layer_layout``. ``size_options`` are the layer's keyword arguments fixed by the token shape it
    sees (``(N,)`` or ``(H, W)``), each computed from that shape, which a model fills unless told otherwise;
    ``fit_options(grid, extent)`` gives the options that make the layer local over about ``extent`` tokens per
    axis of a model's token ``grid`` (window, kernel, block, group), for variants that have such a size.
    """

    name: str
    family: str
    paper: Paper
    layout: Layout
    summary: str
    op: Callable[..., Any]
    implementations: dict[str, Implementation]
    causal: bool = False
    layer: type[torch.nn.Module] | None = None
    layer_layout: Layout | None = None
    layer_defaults: Mapping[str, Any] = field(default_factory=dict)
    size_options: Mapping[str, Callable[[tuple[int, ...]], Any]] = field(default_factory=dict)
    fit_options: Callable[[tuple[int, ...], int], dict[str, Any]] | None = None
    causal_selection: bool = True
    """For a causal variant, whether which keys each query attends to is also decided from past tokens only.
    ``False`` for routing attention: its balanced clusters take each centroid's top-w tokens of the whole sequence
    (as the paper and lucidrains' code do), so a later token can change which earlier tokens share a cluster —
    the leak of expert-choice routing. Its attention weights are causal; its outputs are not, and a causal
    language model trained with it can read the future (``attnzoo compare`` marks such rows)."""
    aliases: tuple[str, ...] = ()
    """Other names :func:`get_variant` (and so :func:`create`) resolves to this variant (``"softmax"``)."""
    compare_default: bool = False
    """Whether the variant represents its family in ``attnzoo compare``'s default (budgeted) run, which measures
    the representatives first (:mod:`attnzoo.compare.jobs`); a family declaring none is represented by its
    first variant."""

    def __post_init__(self) -> None:
        if "reference" not in self.implementations:
            raise ValueError(f"variant {self.name!r} has no 'reference' implementation")
        if self.family not in FAMILIES:
            raise ValueError(f"variant {self.name!r}: family={self.family!r}; expected one of {list(FAMILIES)}")
        for key, implementation in self.implementations.items():
            if key != implementation.name:
                raise ValueError(f"variant {self.name!r}: implementation registered as {key!r} is named "
                                 f"{implementation.name!r}")
        if not isinstance(self.layout, Layout) or not isinstance(self.layer_layout, (Layout, type(None))):
            raise TypeError(f"variant {self.name!r}: layout and layer_layout must be attnzoo.registry.Layout")
        if (self.layer is None) != (self.layer_layout is None):
            raise ValueError(f"variant {self.name!r}: a layer needs a layer_layout and vice versa")


_REGISTRY: dict[str, Variant] = {}
_ALIASES: dict[str, str] = {}


def register(variant: Variant) -> Variant:
    """Add a variant; names are unique."""
    if variant.name in _REGISTRY or variant.name in _ALIASES:
        raise ValueError(f"variant {variant.name!r} is already registered")
    taken = [a for a in variant.aliases if a in _REGISTRY or a in _ALIASES or a == variant.name]
    if taken:
        raise ValueError(f"variant {variant.name!r}: aliases {taken} are already registered names")
    _REGISTRY[variant.name] = variant
    _ALIASES.update(dict.fromkeys(variant.aliases, variant.name))
    return variant


def import_mechanism_modules(module: str) -> list[str]:
    """Import ``attnzoo.ops.<mechanism>.<module>`` for every mechanism package that has one; their names."""
    import attnzoo.ops

    found = []
    for info in pkgutil.iter_modules(attnzoo.ops.__path__):
        name = f"attnzoo.ops.{info.name}.{module}"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            found.append(name)
    return found


_LOADED = False


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_mechanism_modules("registration")


def variants(family: str | None = None) -> list[Variant]:
    """All registered variants, optionally of one family: families in :data:`FAMILIES` order, then in
    registration order (mechanism packages alphabetically)."""
    _ensure_loaded()
    if family is not None and family not in families():
        raise ValueError(f"family={family!r} has no variants; families: {families()}")
    order = list(FAMILIES)
    return sorted((v for v in _REGISTRY.values() if family is None or v.family == family),
                  key=lambda v: order.index(v.family))


def families() -> list[str]:
    """The families that have variants, in :data:`FAMILIES` order."""
    _ensure_loaded()
    present = {v.family for v in _REGISTRY.values()}
    return [f for f in FAMILIES if f in present]


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (or one of its :attr:`Variant.aliases`); the error lists the registered names."""
    _ensure_loaded()
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except KeyError:
        raise KeyError(f"no variant named {name!r}; registered: {sorted(_REGISTRY)}") from None


def create(name: str, *, channels_first: bool = False, **kwargs: Any) -> torch.nn.Module:
    """Build the layer of variant ``name``: its constructor with the registry's ``layer_defaults``, which
    ``kwargs`` override. ``channels_first=True`` wraps a spatial layer (``(B, H, W, C)``) so that it takes and
    returns ``(B, C, H, W)`` (:class:`attnzoo.layers.channels.ChannelsFirst`); CNN modules take ``(B, C, H, W)``
    already. ``attnzoo.describe(name)`` (``attnzoo list NAME``) lists every argument with its effective default;
    an unknown keyword raises ``TypeError`` listing the accepted ones, an unknown name ``KeyError`` listing the
    registered variants.

    >>> import torch, attnzoo
    >>> layer = attnzoo.create("sliding_window_attention", dim=32, num_heads=4, window=8)
    >>> layer(torch.randn(2, 64, 32)).shape
    torch.Size([2, 64, 32])
    >>> attnzoo.create("sliding_window_attention", windw=8)
    Traceback (most recent call last):
    TypeError: create('sliding_window_attention'): unexpected keyword argument 'windw'; ...
    """
    import inspect

    variant = get_variant(name)
    if variant.layer is None:
        raise ValueError(f"variant {name!r} has no layer")
    params = inspect.signature(variant.layer.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [p for p in params if p != "self"]
        unknown = [key for key in kwargs if key not in accepted]
        if unknown:
            raise TypeError(f"create({name!r}): unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; {variant.layer.__qualname__} accepts "
                            f"{', '.join(accepted)} (defaults: attnzoo.describe({name!r}))")
    layer = variant.layer(**{**variant.layer_defaults, **kwargs})
    if not isinstance(channels_first, bool):
        raise TypeError(f"channels_first={channels_first!r}: expected a bool")
    if not channels_first:
        return layer
    if variant.layer_layout is not None and variant.layer_layout.channels_first:
        raise ValueError(f"create({name!r}, channels_first=True): its layer already takes {variant.layer_layout} "
                         "(a CNN module); channels_first is for (B, H, W, C) / (B, X, Y, Z, C) layers")
    if variant.layer_layout is None or variant.layer_layout.token_axes < 2:
        raise ValueError(f"create({name!r}, channels_first=True): its layer takes {variant.layer_layout}, not a "
                         "spatial grid; channels_first is for (B, H, W, C) / (B, X, Y, Z, C) layers")
    from attnzoo.layers.channels import ChannelsFirst

    return ChannelsFirst(layer)


"""Build a model's token mixer by name: ``"softmax"`` (dense attention, the registered ``softmax_attention``
variant under the name results and the CLI use) or any registry variant's layer.

Every model of :mod:`attnzoo.models` builds its mixers with :func:`mixer_factory`, telling it which input
layouts it can feed (``(B, N, C)`` sequences, ``(B, H, W, C)`` grids), whether the mixer must be causal, and
its token grid. The factory fills the layer's *size options* (the keyword arguments whose value is fixed by
the token shape the layer sees, declared by each variant as ``Variant.size_options``) from that grid unless
the caller passes them, and
refuses, with the list of usable mixers, a name that is unknown, has the wrong layout or cannot be causal
when causality is required. CNN attention modules (family ``cnn``, ``(B, C, H, W)`` layers) are never mixers: they
join convolutional backbones, and asking for one as a mixer says so.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attnzoo.registry import IMAGE, TOKENS, Layout, get_variant, variants

SOFTMAX = "softmax"
"""The mixer name of the dense baseline: the layer of the registered ``softmax_attention`` variant (an alias of
it, :class:`attnzoo.layers.SoftmaxAttention`), listed once under this name by :func:`usable_mixers`."""

SEQUENCE_LAYOUT = TOKENS
"""``(B, N, C)``: what sequence models feed their mixers."""
GRID_LAYOUT = IMAGE
"""``(B, H, W, C)``: what a ViT feeds a spatial mixer."""


@dataclass(frozen=True)
class MixerSpec:
    """What building mixer ``name`` takes: the layer class, its input layout, its default keyword arguments,
    whether it can run causally (a causal registry variant, or softmax) and its size options."""

    name: str
    layer: type[nn.Module]
    layout: Layout
    defaults: Mapping[str, Any]
    can_be_causal: bool
    size_options: Mapping[str, Callable[[tuple[int, ...]], Any]] = field(default_factory=dict)


def mixer_spec(name: str, causal: bool) -> MixerSpec:
    """The spec of mixer ``name``; ``"softmax"`` is causal exactly when ``causal`` is (its ``is_causal``
    default). Raises ``KeyError`` for an unknown name and ``ValueError`` for a variant without a layer."""
    variant = get_variant(name)
    if name == SOFTMAX:  # the baseline's historical defaults: one head unless told, causal as the model is
        return MixerSpec(SOFTMAX, variant.layer, variant.layer_layout, {"is_causal": causal}, True)
    if variant.layer is None:
        raise ValueError(f"mixer {name!r} has no layer")
    return MixerSpec(name, variant.layer, variant.layer_layout, dict(variant.layer_defaults), variant.causal,
                     variant.size_options)


def option_if_taken(mixer: str, option: str, value: Any) -> dict[str, Any]:
    """``{option: value}`` if mixer ``mixer``'s layer takes that keyword argument (``num_heads``, ``is_causal``),
    else ``{}``; also ``{}`` for an unknown name, which :func:`check_mixers` then reports."""
    try:
        layer = mixer_spec(mixer, causal=False).layer
    except KeyError:
        return {}
    return {option: value} if option in inspect.signature(layer.__init__).parameters else {}


def fit_options(mixer: str, grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """The options that make mixer ``mixer`` local over about ``extent`` tokens per axis of the token ``grid`` its
    layer sees (the variant's ``fit_options``; a ``(B, N, C)`` layer sees a 2-D grid flattened), or ``{}`` for a
    mixer without such a size (softmax, linear attention...) or an unknown name, which :func:`check_mixers`
    then reports."""
    try:
        spec = mixer_spec(mixer, causal=False)
    except KeyError:
        return {}
    fit = None if mixer == SOFTMAX else get_variant(mixer).fit_options
    return {} if fit is None else fit(_tokens_seen(spec.layout, tuple(grid)), extent)


def check_mixers(options: Mapping[str, Mapping[str, Any]], dim: int, layouts: Sequence[Layout],
                 causal: bool) -> None:
    """Raise one ``ValueError`` naming every mixer of ``options`` (name -> layer options) that
    :func:`mixer_factory` refuses for a model feeding ``layouts`` (causal if ``causal``), then the usable ones."""
    problems = []
    for mixer, kwargs in options.items():
        try:
            mixer_factory(mixer, dim, kwargs, layouts=layouts, causal=causal)
        except KeyError:
            problems.append(f"unknown mixer {mixer!r}")
        except ValueError as error:
            problems.append(str(error).split("; usable mixers")[0])
    if problems:
        raise ValueError("; ".join(problems) + f". Usable mixers: {', '.join(usable_mixers(layouts, causal))}")


def usable_mixers(layouts: Sequence[Layout], causal: bool) -> list[str]:
    """The mixer names a model feeding ``layouts`` (and requiring causality if ``causal``) can build."""
    dense = [SOFTMAX] if SEQUENCE_LAYOUT in layouts else []
    return dense + [v.name for v in variants() if v.layer is not None and v.layer_layout in layouts
                    and (v.causal or not causal) and SOFTMAX not in v.aliases]


def _causal_option_value(layer: type[nn.Module], defaults: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Any:
    """The ``is_causal`` value the layer will be built with, or ``None`` if the layer has no such option."""
    parameters = inspect.signature(layer.__init__).parameters
    if "is_causal" not in parameters:
        return None
    if "is_causal" in kwargs:
        return kwargs["is_causal"]
    if "is_causal" in defaults:
        return defaults["is_causal"]
    return parameters["is_causal"].default


def _check_causal(spec: MixerSpec, kwargs: Mapping[str, Any], usable: str) -> None:
    """Raise ``ValueError`` unless ``spec`` built with ``kwargs`` is causal."""
    if not spec.can_be_causal:
        raise ValueError(f"mixer {spec.name!r} is not causal (the variant is not declared causal): its outputs "
                         f"may depend on future tokens, so this causal model cannot use it; {usable}")
    causal = _causal_option_value(spec.layer, spec.defaults, kwargs)
    if causal is not None and not (all(causal) if isinstance(causal, (tuple, list)) else causal):
        raise ValueError(f"mixer {spec.name!r} would be built with is_causal={causal!r}; pass "
                         "mixer_kwargs={'is_causal': True}")


@dataclass(frozen=True)
class MixerBuilder:
    """Builds fresh layers of one mixer: ``spec.layer(**options)`` on each call."""

    spec: MixerSpec
    options: Mapping[str, Any]

    def __call__(self) -> nn.Module:
        return self.spec.layer(**self.options)


def _tokens_seen(layout: Layout, grid: tuple[int, ...]) -> tuple[int, ...]:
    """The token shape a ``layout`` layer sees of the model's token ``grid``: the grid as is if the ranks
    match, else the grid flattened row-major for a ``(B, N, C)`` layer."""
    axes = layout.token_axes
    if axes == len(grid):
        return grid
    if axes == 1:
        return (math.prod(grid),)
    raise ValueError(f"grid={grid}: a layer with layout {layout} needs {axes} token axes")


def mixer_factory(mixer: str, dim: int, mixer_kwargs: Mapping[str, Any] | None = None, *,
                  layouts: Sequence[Layout] = (SEQUENCE_LAYOUT,), causal: bool = True,
                  grid: tuple[int, ...] | None = None) -> MixerBuilder:
    """A :class:`MixerBuilder` of token mixers of width ``dim`` for a model feeding ``layouts``.

    ``mixer`` is ``"softmax"`` or a registry variant name. The layer is built with its defaults, overridden by
    the size options (the variant's ``size_options``) filled from the token shape it will see,
    overridden by ``mixer_kwargs`` (``dim`` is the model's). ``grid`` is the model's token grid (``(N,)`` or
    ``(H, W)``; ``None``: fill no size option); a ``(B, N, C)`` layer sees a 2-D grid flattened row-major.
    The defaults suit a causal ``(B, N, C)`` language model. Raises ``KeyError`` for an unknown name and
    ``ValueError`` for a layout not in ``layouts`` or, if ``causal``, a variant that is not causal or whose
    ``is_causal`` option is off; the messages list the usable mixers.
    """
    kwargs = dict(mixer_kwargs or {})
    if kwargs.get("dim", dim) != dim:
        raise ValueError(f"mixer_kwargs dim={kwargs['dim']} differs from the model's dim={dim}")
    kwargs["dim"] = dim
    usable = f"usable mixers: {', '.join(usable_mixers(layouts, causal))}"
    try:
        spec = mixer_spec(mixer, causal)
    except KeyError:
        raise KeyError(f"no variant named {mixer!r}; {usable}") from None
    if spec.layout.channels_first:
        raise ValueError(f"mixer {mixer!r} is a CNN attention module (family {get_variant(mixer).family!r}, layer "
                         f"layout {spec.layout} in and out), not a token mixer: it goes into a convolutional "
                         f"backbone (attnzoo.models), not a transformer block; {usable}")
    if spec.layout not in layouts:
        raise ValueError(f"mixer {mixer!r} has layer layout {spec.layout}; this model takes layouts "
                         f"{', '.join(map(str, layouts))}; {usable}")
    if causal:
        _check_causal(spec, kwargs, usable)
    size_options: dict[str, Any] = {}
    if grid is not None:
        tokens = _tokens_seen(spec.layout, tuple(grid))
        size_options = {name: size(tokens) for name, size in spec.size_options.items()}
    return MixerBuilder(spec, {**spec.defaults, **size_options, **kwargs})

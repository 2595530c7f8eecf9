"""The registry of whole models: ``attnzoo.create_model(name, **kwargs)`` and ``attnzoo.list_models()``.

Each backbone module of :mod:`attnzoo.models.backbones` registers its model next to its code with
:func:`register_model` (a class decorator); the registry imports that package the first time a name is looked
up, so registering a new backbone needs no edit here. Every registered model is an image classifier taking
``(B, in_channels, H, W)`` (or ``(B, H, W)`` grey images) and returning ``(B, num_classes)`` logits; its
defaults are sized for 28x28 Fashion-MNIST (1 channel, 10 classes).

>>> import attnzoo
>>> "davit" in attnzoo.list_models()
True
>>> attnzoo.create_model("davit", dpeths=(1, 1, 2))
Traceback (most recent call last):
TypeError: create_model('davit'): unexpected keyword argument 'dpeths'; DaViT accepts ...
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from attnzoo.registry import Paper

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its ``name``, constructor (``builder``, an ``nn.Module`` class), ``paper``, the
    registry variants (``mixers``) whose layers it stacks and the constructor ``defaults`` the name implies
    (e.g. ``resnet18_efficient_channel_attention``: ``attention="efficient_channel_attention"``)."""

    name: str
    builder: type[nn.Module]
    paper: Paper
    mixers: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The first line of the model class's docstring."""
        return (inspect.getdoc(self.builder) or "").splitlines()[0]


_MODELS: dict[str, ModelEntry] = {}
_LOADED = False


def register_model(name: str, paper: Paper, mixers: tuple[str, ...] = (),
                   defaults: Mapping[str, Any] | None = None) -> Callable[[ModelClass], ModelClass]:
    """Class decorator registering an image-classifier ``nn.Module`` class under ``name`` (with constructor
    ``defaults`` the name implies, which ``create_model`` keyword arguments override). ``ValueError`` if the name
    is taken by another registration."""

    def decorate(builder: ModelClass) -> ModelClass:
        entry = ModelEntry(name, builder, paper, tuple(mixers), dict(defaults or {}))
        taken = _MODELS.get(name)
        if taken is not None and (taken.builder is not builder or taken.defaults != entry.defaults):
            raise ValueError(f"model name {name!r} is already registered by {taken.builder.__qualname__} with "
                             f"{dict(taken.defaults)}")
        _MODELS[name] = entry
        return builder

    return decorate


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        importlib.import_module("attnzoo.models.backbones")


def list_models() -> list[str]:
    """The registered model names, sorted."""
    _ensure_loaded()
    return sorted(_MODELS)


def get_model(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``; ``KeyError`` listing the registered names for an unknown one."""
    _ensure_loaded()
    if not isinstance(name, str) or name not in _MODELS:
        raise KeyError(f"no model named {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` with its defaults (the class's, then those its name implies), overridden by
    ``kwargs``.

    ``KeyError`` for an unknown name (listing the registered ones), ``TypeError`` for a keyword the model does
    not take (listing those it takes); bad values raise the model's own ``ValueError`` naming the argument.
    """
    entry = get_model(name)
    accepted = [p for p in inspect.signature(entry.builder.__init__).parameters if p != "self"]
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise TypeError(f"create_model({name!r}): unexpected keyword argument{plural} "
                        f"{', '.join(map(repr, unknown))}; {entry.builder.__name__} accepts {', '.join(accepted)}")
    return entry.builder(**{**entry.defaults, **kwargs})

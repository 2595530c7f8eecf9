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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from attnzoo.registry import Paper

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its ``name``, constructor (``builder``, an ``nn.Module`` class), ``paper`` and the
    registry variants (``mixers``) whose layers it stacks."""

    name: str
    builder: type[nn.Module]
    paper: Paper
    mixers: tuple[str, ...]

    @property
    def summary(self) -> str:
        """The first line of the model class's docstring."""
        return (inspect.getdoc(self.builder) or "").splitlines()[0]


_MODELS: dict[str, ModelEntry] = {}
_LOADED = False


def register_model(name: str, paper: Paper, mixers: tuple[str, ...] = ()) -> Callable[[ModelClass], ModelClass]:
    """Class decorator registering an image-classifier ``nn.Module`` class under ``name``. ``ValueError`` if the
    name is taken by another class."""

    def decorate(builder: ModelClass) -> ModelClass:
        taken = _MODELS.get(name)
        if taken is not None and taken.builder is not builder:
            raise ValueError(f"model name {name!r} is already registered by {taken.builder.__qualname__}")
        _MODELS[name] = ModelEntry(name, builder, paper, tuple(mixers))
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
    """Build registered model ``name`` with its defaults, overridden by ``kwargs``.

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
    return entry.builder(**kwargs)

"""Attention layers (``nn.Module``): token mixers ``(B, N, C)``, spatial mixers ``(B, H, W, C)``, CNN attention
modules ``(B, C, H, W)`` (family ``cnn``). Every public
``nn.Module`` class defined in a module of this package is re-exported here, found by module discovery (a new
layer module needs no edit here)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from torch import nn

__all__: list[str] = []

for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _name, _obj in inspect.getmembers(_module, inspect.isclass):
        if issubclass(_obj, nn.Module) and _obj.__module__ == _module.__name__ and not _name.startswith("_"):
            globals()[_name] = _obj
            __all__.append(_name)
__all__ = sorted(__all__)

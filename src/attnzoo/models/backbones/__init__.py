"""Small faithful vision backbones of the registry's papers, registered by name (:mod:`attnzoo.models.registry`):
one module per backbone, each registering its model with :func:`~attnzoo.models.registry.register_model`. The
modules are found by discovery (a new backbone module needs no edit here)."""

from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "common":
        importlib.import_module(f"{__name__}.{_info.name}")

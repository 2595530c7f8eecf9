"""Functional attention ops, one package per mechanism (``attnzoo/ops/<mechanism>/``), each exporting its public
ops in ``__all__``; this package re-exports them all, found by package discovery (a new mechanism's folder
needs no edit here). Layout ``(B, H, N, D)`` for sequences, ``(B, H, X, Y, D)`` / ``(B, H, X, Y, Z, D)`` for
2-D / 3-D grids, ``(B, N, C)`` for channels-last sequence operators, ``(B, C, H, W)`` feature maps for the CNN
modules (their convention: :mod:`attnzoo.ops.feature_maps`). Every registered op takes ``impl=``
("auto", "reference", or a named fast path); :func:`dense_attention` is the plain dense helper."""

from __future__ import annotations

import importlib
import pkgutil

from attnzoo.ops.dense import dense_attention

__all__ = ["dense_attention"]

for _info in pkgutil.iter_modules(__path__):
    if _info.ispkg:
        _module = importlib.import_module(f"{__name__}.{_info.name}")
        for _name in _module.__all__:
            globals()[_name] = getattr(_module, _name)
        __all__ += _module.__all__
__all__ = sorted(__all__)

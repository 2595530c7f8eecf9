"""Layers that show their constructor options: ``repr(layer)`` lists every argument it was built with."""

from __future__ import annotations

import functools
import inspect
from typing import Any


class ShowsOptions:
    """Mixin for ``nn.Module`` layers: records the arguments of the most-derived ``__init__`` call (defaults
    filled in) as :attr:`options` and prints them in ``extra_repr``, e.g.
    ``NeighborhoodAttention2D(dim=32, num_heads=4, kernel_size=5, ...)``. Subclasses need no code of their own."""

    options: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            # the outermost (most-derived) __init__ returns last, so its arguments are the ones kept
            self.options = {name: value for name, value in bound.arguments.items() if name != "self"}

        cls.__init__ = recording_init  # type: ignore[method-assign]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value!r}" for name, value in getattr(self, "options", {}).items())

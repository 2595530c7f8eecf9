"""attnzoo: the attention mechanisms of the research literature behind one API.

``attnzoo.variants(family=...)`` lists registered mechanisms, ``attnzoo.create(name, **kwargs)`` builds a
layer (``attnzoo.describe(name)``: its arguments with their defaults, the op, implementations and
capabilities), ``attnzoo.ops`` holds the functional ops (each with ``impl=``) and ``attnzoo.layers`` the modules;
``attnzoo.create_model(name, **kwargs)`` builds a whole vision backbone of ``attnzoo.list_models()``.
"""

from attnzoo.docs import describe
from attnzoo.models.registry import create_model, list_models
from attnzoo.registry import (
    CallFacts,
    NotSupportedError,
    create,
    explain,
    families,
    get_variant,
    variants,
)

__version__ = "0.1.0"
__all__ = ["CallFacts", "NotSupportedError", "create", "create_model", "describe", "explain", "families", "get_variant",
           "list_models", "variants"]

"""attnzoo: the attention mechanisms of the research literature behind one API.

``attnzoo.variants(family=...)`` lists registered mechanisms, ``attnzoo.create(name, **kwargs)`` builds a
layer (``attnzoo.describe(name)``: its arguments with their defaults, the op, implementations and
capabilities), ``attnzoo.ops`` holds the functional ops (each with ``impl=``) and ``attnzoo.layers`` the modules.
"""

from attnzoo.registry import (
    CallFacts,
    NotSupportedError,
    create,
    explain,
    families,
    get_variant,
    variants,
)
from attnzoo.docs import describe

__version__ = "0.1.0"
__all__ = ["CallFacts", "NotSupportedError", "create", "describe", "explain", "families", "get_variant", "variants"]

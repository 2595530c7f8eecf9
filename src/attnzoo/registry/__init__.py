"""The variant registry: what each attention mechanism is, which implementations it has and what each can do.

Every mechanism is a :class:`Variant` (paper, family, layout, functional op, layer) with one or more
:class:`Implementation` entries. Each implementation declares its :class:`Capabilities`; a call is described
by a :class:`CallFacts` and :func:`select_implementation` either returns the implementation to run or raises
:class:`NotSupportedError` listing every reason, per implementation (xformers' ``not_supported_reasons``).
``impl="auto"`` takes the first implementation, in declared priority order, that can run the call, and
:func:`explain` says which and why the others were passed over. Dispatch has no logging or other side effect
(``torch.compile`` traces it without graph breaks); :func:`explain` is the way to ask.

Each mechanism registers itself next to its code: ``attnzoo/ops/<mechanism>/registration.py`` calls
:func:`register`, and the registry imports every such module of the ``attnzoo.ops`` package on first use, so
adding a mechanism adds a folder and edits no existing file. What the tests need (cases, sample and error
inputs, random-case generators) lives apart, in :mod:`attnzoo.testing`.
"""

from attnzoo.registry.capabilities import (
    FEATURES,
    FLOAT_DTYPES,
    CallFacts,
    Capabilities,
    Implementation,
    NotSupportedError,
)
from attnzoo.registry.dispatch import (
    explain,
    select_implementation,
    slow_half_precision,
)
from attnzoo.registry.layouts import (
    FEATURE_MAP,
    GRID_2D,
    GRID_3D,
    IMAGE,
    SEQUENCE,
    TOKENS,
    VOLUME,
    Layout,
    Paper,
)
from attnzoo.registry.variants import (
    FAMILIES,
    Variant,
    create,
    families,
    get_variant,
    import_mechanism_modules,
    register,
    variants,
)

__all__ = ["FAMILIES", "FEATURE_MAP", "FEATURES", "FLOAT_DTYPES", "GRID_2D", "GRID_3D", "IMAGE", "SEQUENCE", "TOKENS",
           "VOLUME",
           "CallFacts", "Capabilities", "Implementation", "Layout", "NotSupportedError", "Paper", "Variant",
           "create", "explain", "families", "get_variant", "import_mechanism_modules", "register",
           "select_implementation", "slow_half_precision", "variants"]

"""Load single classes of timm from its installed source without importing timm (``import timm`` needs
torchvision, which the CPU environment does not have).

The source files of timm ``TIMM_VERSION`` (installed with ``pip install --no-deps timm==1.0.31``, as
``scripts/setup.sh --peers`` does, and found through ``importlib.metadata``, which imports nothing) are parsed
and only the named top-level classes and functions are executed, in a namespace holding the few names they
use (torch, ``nn``, typing names, and stand-ins for timm helpers given by the caller). The classes are timm's
own code, line for line; tests that use them skip when timm is not installed or is another version.
"""

from __future__ import annotations

import ast
import importlib.metadata
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

TIMM_VERSION = "1.0.31"


def timm_file(path: str) -> str:
    """The text of ``timm/<path>`` of the installed timm ``TIMM_VERSION``; skips the test otherwise."""
    try:
        dist = importlib.metadata.distribution("timm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"timm is not installed (pip install --no-deps timm=={TIMM_VERSION})")
    if dist.version != TIMM_VERSION:
        pytest.skip(f"timm {dist.version} is installed; these peer tests pin {TIMM_VERSION}")
    return Path(dist.locate_file(f"timm/{path}")).read_text()


def load_timm(path: str, names: Sequence[str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Execute the top-level definitions ``names`` of ``timm/<path>`` (in file order) and return the namespace;
    ``extra`` adds names they refer to (other timm definitions, stand-ins for timm helpers)."""
    tree = ast.parse(timm_file(path))
    wanted = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))
              and node.name in names]
    missing = set(names) - {node.name for node in wanted}
    assert not missing, f"timm/{path} has no top-level {sorted(missing)}"
    for node in wanted:
        node.decorator_list = []  # fx-tracing registrations (register_notrace_function) only
    namespace: dict[str, Any] = {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor,
                                 **{name: getattr(typing, name) for name in ("Optional", "Tuple", "List", "Type",
                                                                             "Union", "Callable")},
                                 **(extra or {})}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), f"timm/{path}", "exec"), namespace)  # noqa: S102
    return namespace


def to_2tuple(x: Any) -> tuple:  # noqa: ANN401
    """timm.layers.helpers.to_2tuple: an iterable unchanged (as a tuple), anything else twice."""
    return tuple(x) if isinstance(x, typing.Iterable) and not isinstance(x, str) else (x, x)

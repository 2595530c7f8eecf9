"""Hostile input to every layer: wrong channel counts, dtypes, ranks and constructor options each raise an error
naming the argument, the value and what is expected; nothing is coerced (``is_causal="False"`` used to mean
causal, ``scale="0.5"`` was accepted).

Everything here runs over the registry (``attnzoo.testing.specs()``): each layer is built with
``attnzoo.create(variant)`` and fed ``torch.randn(spec.layer_input_shape)``, and a mechanism's own bad
constructor options are the ``layer_error_inputs`` of its spec. The functional ops' bad flags and scalars are
the ``error_inputs`` of each spec (``attnzoo/ops/<mechanism>/testing.py``), run by ``tests/test_contract.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest
import torch

import attnzoo
from attnzoo.testing import LayerErrorInput, OpTestSpec, specs
from attnzoo.validation import ArgumentTypeError

SPECS = [s for s in specs() if s.registered.layer is not None]  # layer tests: variants with a layer
SPEC_IDS = [s.variant for s in SPECS]


def test_type_errors_are_also_value_errors() -> None:
    """Earlier versions raised ``ValueError`` for some wrong-typed flags and ``TypeError`` for others."""
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


# --- layers ----------------------------------------------------------------------------------------------------------

def _layer(spec: OpTestSpec) -> tuple[torch.nn.Module, tuple[int, ...]]:
    return attnzoo.create(spec.variant), tuple(spec.layer_input_shape)


def _channel_axis(spec: OpTestSpec) -> int:
    """Where a layer's input has its channels: dim 1 for CNN modules ``(B, C, H, W)``, else the last dim."""
    return 1 if spec.registered.layer_layout.channels_first else -1


def _channels(shape: tuple[int, ...], axis: int) -> torch.Tensor:
    fewer = list(shape)
    fewer[axis] -= 1
    return torch.randn(*fewer)


INPUT_CASES = [
    ("channels", _channels, ValueError, lambda c: rf"input has shape .*, {c - 1} channels; expected .*C={c}[,)]"),
    ("dtype", lambda s: torch.randn(*s, dtype=torch.float64), TypeError,
     lambda c: r"input dtype torch.float64 differs from the layer's parameter dtype torch.float32"),
    ("rank", lambda s: torch.randn(1, *s), ValueError, lambda c: r"input has shape .*; expected \d-D \("),
    ("integer", lambda s: torch.zeros(*s, dtype=torch.long), TypeError,
     lambda c: r"input dtype torch.int64; expected a floating"),
    ("not a tensor", lambda s: np.zeros(s, dtype=np.float32), TypeError, lambda c: r"input must be a torch.Tensor"),
]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize(("what", "make", "error", "match"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_layer_rejects_bad_input(spec: OpTestSpec, what: str, make: Callable, error: type,
                                 match: Callable[[int], str]) -> None:
    module, shape = _layer(spec)
    module(torch.randn(*shape))  # the valid input runs
    axis = _channel_axis(spec)
    with pytest.raises(error, match=match(shape[axis])):
        module(make(shape, axis) if what == "channels" else make(shape))


@pytest.mark.parametrize("variant", ["sliding_window_attention", "shifted_sparse_attention", "linear_attention"])
def test_layer_accepts_low_precision_input_under_autocast(variant: str) -> None:
    spec = next(s for s in SPECS if s.variant == variant)
    module, shape = _layer(spec)
    x = torch.randn(*shape, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="differs from the layer's parameter dtype"):
        module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).shape == shape


def _generic_constructor_cases(spec: OpTestSpec) -> list[LayerErrorInput]:
    """The bad constructor options every layer shares, from its registered defaults and its signature: a float
    ``dim``; with ``num_heads``, zero heads and a ``dim`` they do not divide; a string ``scale`` and
    ``qkv_bias`` where the constructor takes them."""
    variant = spec.registered
    defaults = dict(variant.layer_defaults)
    params = inspect.signature(variant.layer).parameters
    dim = defaults["dim"]
    cases = [LayerErrorInput(f"dim={float(dim)!r}", ArgumentTypeError, rf"dim={float(dim)!r}: expected an int >= 1",
                             {"dim": float(dim)})]
    if "num_heads" in params:
        heads = defaults["num_heads"]
        cases += [
            LayerErrorInput("num_heads=0", ValueError, r"num_heads=0: expected an int >= 1", {"num_heads": 0}),
            LayerErrorInput(f"dim={dim + 1}", ValueError, rf"dim={dim + 1} must be divisible by num_heads={heads}",
                            {"dim": dim + 1}),
        ]
    if "scale" in params:
        cases.append(LayerErrorInput("scale='0.1'", ArgumentTypeError, r"scale='0.1': expected a finite real number",
                                     {"scale": "0.1"}))
    if "qkv_bias" in params:
        cases.append(LayerErrorInput("qkv_bias='no'", ArgumentTypeError, r"qkv_bias='no': expected a bool",
                                     {"qkv_bias": "no"}))
    return cases


CONSTRUCTOR_CASES = [pytest.param(s, e, id=f"{s.variant}-{e.description}")
                     for s in SPECS for e in (*_generic_constructor_cases(s), *s.layer_error_inputs)]


@pytest.mark.parametrize(("spec", "error"), CONSTRUCTOR_CASES)
def test_layer_rejects_bad_options(spec: OpTestSpec, error: LayerErrorInput) -> None:
    with pytest.raises(error.error, match=error.match):
        attnzoo.create(spec.variant, **error.kwargs)


def test_every_layer_has_constructor_error_cases() -> None:
    """A new mechanism gets the shared constructor checks with no edit here; its own options go in its spec."""
    assert all(_generic_constructor_cases(s) for s in SPECS)

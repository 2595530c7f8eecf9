"""Every registered layer runs forward and backward under ``torch.autocast("cpu", dtype=...)`` with float32
parameters, for bfloat16 and float16: the parameters a layer passes to its op as tensors follow the activations'
dtype (``attnzoo.layers.checks.autocast_like``), the output is finite and close to the float32 eager output
within the dtype's tolerance, and gradients reach every parameter that float32 training reaches.

Where ``impl="auto"`` has no implementation declaring the autocast dtype, the layer either upcasts that op
explicitly (LMU's memory, in float32) or the call raises :class:`attnzoo.NotSupportedError`
(:data:`NOT_SUPPORTED`), as each layer's docstring says.
"""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.testing import OpTestSpec, specs

SPECS = [s for s in specs() if s.registered.layer is not None]  # variants with a layer
DTYPES = (torch.bfloat16, torch.float16)
TOLERANCE = {torch.bfloat16: 5e-2, torch.float16: 1e-2}
"""Largest difference to the float32 output, relative to its largest magnitude (measured: at most 1.8e-2 in
bfloat16, SOFT's Newton iterations; 2.5e-3 in float16)."""

NOT_SUPPORTED = {("kernelized_rpe_attention", torch.float16)}
"""(variant, dtype) pairs whose ``impl="auto"`` has no implementation of the dtype: a clear NotSupportedError."""

FLOAT32_OUTPUT = {"base_conv"}
"""Layers whose op takes every weight as a tensor, which autocast does not cast: they compute in the input's
float32 (documented in the layer)."""
GATES_THE_INPUT = {"efficient_channel_attention", "subspace_attention", "large_kernel_attention",
                   "polarized_self_attention"}
"""CNN modules whose output is a gate (or LKA's attention map) times the float32 input: autocast computes the gate
in the lower precision, the product takes the input's float32 (as timm's ``EcaModule`` under autocast)."""
ADDS_TO_FLOAT32 = {"position_self_attention", "channel_self_attention", "hyperzzw_conv"}
"""CNN modules whose output adds a float32 term to the low-precision result: PAM / CAM return ``γ · attention + x``
(the residual in the input's float32), HyperZ·Z·W's local branch adds its float32 ``fast_bias`` (as the official
code under autocast)."""


def run(spec: OpTestSpec, dtype: torch.dtype | None) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """The layer's output (a fixed seed, its spec's input) under autocast to ``dtype`` (``None``: plain float32)
    and the gradients of its float32 sum towards every parameter, by name."""
    torch.manual_seed(0)
    layer = attnzoo.create(spec.variant)
    x = torch.randn(spec.layer_input_shape)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = layer(x)
    out.float().sum().backward()
    return out, {name: p.grad for name, p in layer.named_parameters()}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.variant)
def test_layer_under_autocast(spec: OpTestSpec, dtype: torch.dtype) -> None:
    if (spec.variant, dtype) in NOT_SUPPORTED:
        with pytest.raises(attnzoo.NotSupportedError, match=f"dtype={dtype}"):
            run(spec, dtype)
        return
    expected, expected_grads = run(spec, None)
    out, grads = run(spec, dtype)
    assert out.dtype == (torch.float32 if spec.variant in FLOAT32_OUTPUT | GATES_THE_INPUT | ADDS_TO_FLOAT32 else dtype)
    assert torch.isfinite(out).all()
    error = (out.float() - expected).abs().max() / expected.abs().max()
    assert error <= TOLERANCE[dtype], f"relative error {error:.3g} > {TOLERANCE[dtype]}"
    for name, grad in grads.items():
        if expected_grads[name] is not None:
            assert grad is not None, f"{name} gets no gradient under autocast"
            assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), name


def test_autocast_like_leaves_eager_calls_alone() -> None:
    """Outside autocast the helper changes nothing: a mismatched dtype still reaches the op's check."""
    from attnzoo.layers.checks import autocast_like

    table, x = torch.zeros(3), torch.zeros(2, dtype=torch.bfloat16)
    assert autocast_like(table, x) is table
    assert autocast_like(None, x) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_like(table, x).dtype == torch.bfloat16

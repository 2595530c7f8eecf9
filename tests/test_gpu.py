"""CUDA paths (FlexAttention forward and backward, tiled kernel on GPU) against the reference on the GPU.

Skipped cleanly where no CUDA device is present (CI never has one); run on the GPU machine when lent.
"""

from __future__ import annotations

import pytest
import torch

from attnzoo.testing import specs
from registry_cases import case_id, forward_backward, make_inputs, outputs, run_all

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA_CASES = [pytest.param(s, name, case, id=f"{s.variant}-{name}-{case_id(case)}")
              for s in specs() for name, impl in s.registered.implementations.items()
              if "cuda" in impl.capabilities.devices for case in s.cases]


@pytest.mark.parametrize(("spec", "impl", "case"), CUDA_CASES)
def test_cuda_path_matches_reference(spec, impl, case) -> None:
    """Every implementation declaring CUDA (the reference too), every output, against the CPU float64 oracle."""
    ref_outs, ref_grads = forward_backward(spec, case, make_inputs(spec, case, requires_grad=True), "reference")
    inputs = make_inputs(spec, case, torch.float32, device="cuda", requires_grad=True)
    backward = "cuda" in spec.registered.implementations[impl].capabilities.backward_devices
    if backward:
        outs, grads = forward_backward(spec, case, inputs, impl)
        for name, grad in grads.items():
            torch.testing.assert_close(grad.double().cpu(), ref_grads[name], atol=2e-3, rtol=0, msg=f"grad of {name}")
    else:
        with torch.no_grad():
            outs = outputs(run_all(spec, case, inputs, impl))
    # TF32 may be on for CUDA matmuls: tolerances are those of TF32 accumulation.
    for out, ref in zip(outs, ref_outs, strict=True):
        torch.testing.assert_close(out.double().cpu(), ref, atol=2e-3, rtol=0)

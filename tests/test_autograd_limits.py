"""Where the hand-written kernels stop: double backward and vmap raise ``NotSupportedError`` by name (they used
to give ``None`` second-order gradients under ``allow_unused``, or torch's bare errors); ``torch.jit.trace`` of
the convolution ops works and matches eager on a new input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from attnzoo.ops.base_conv.functional import base_conv
from attnzoo.ops.karat.functional import fourier_karat
from attnzoo.ops.lmu.functional import lmu_memory
from attnzoo.ops.neighborhood.functional import neighborhood_attention_2d
from attnzoo.ops.sliding_window.functional import sliding_window_attention
from attnzoo.ops.soft.functional import soft_attention
from attnzoo.registry import NotSupportedError


def _qkv(*shape: int) -> list[torch.Tensor]:
    return [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def _karat(impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, v = _qkv(1, 2, 6, 4)
    coef = [torch.randn(2, 2, 6, 3, dtype=torch.float64) for _ in range(2)]
    return fourier_karat(q, k, v, *coef, torch.randn(2, 6, 2, dtype=torch.float64), impl=impl), q


def _sliding(impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, v = _qkv(1, 2, 12, 4)
    return sliding_window_attention(q, k, v, 3, num_sink_tokens=1, impl=impl), q


def _neighborhood(impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, v = _qkv(1, 2, 6, 6, 4)
    return neighborhood_attention_2d(q, k, v, 3, impl=impl), q


def _soft(impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiated in the landmarks: the path through the Newton inverse (the queries' does not cross it)."""
    q, v, _ = _qkv(1, 2, 8, 4)
    landmarks = (3 * torch.randn(1, 2, 2, 4, dtype=torch.float64)).requires_grad_()  # well separated: converges
    return soft_attention(q, v, landmarks, impl=impl), landmarks


FIRST_ORDER: dict[str, tuple[Callable[[str], tuple[torch.Tensor, torch.Tensor]], str, str]] = {
    "neighborhood_attention_2d": (_neighborhood, "tiled", "tiled kernel"),
    "sliding_window_attention": (_sliding, "tiled", "tiled kernel"),
    "fourier_karat": (_karat, "blocked", "blocked path"),
    "soft_attention": (_soft, "newton", "Newton path"),
}


@pytest.mark.parametrize("allow_unused", [False, True])
@pytest.mark.parametrize("variant", sorted(FIRST_ORDER))
def test_double_backward_raises_not_supported(variant: str, allow_unused: bool) -> None:
    run, impl, name = FIRST_ORDER[variant]
    out, q = run(impl)
    with pytest.raises(NotSupportedError, match=rf"{name}.*no double backward.*impl=\"reference\" supports"):
        (grad,) = torch.autograd.grad(out.square().sum(), q, create_graph=True)
        torch.autograd.grad(grad.sum(), q, allow_unused=allow_unused)


@pytest.mark.parametrize("variant", sorted(FIRST_ORDER))
def test_first_order_gradients_still_work_and_the_reference_has_double_backward(variant: str) -> None:
    run, impl, _ = FIRST_ORDER[variant]
    out, q = run(impl)
    (grad,) = torch.autograd.grad(out.square().sum(), q)
    assert torch.isfinite(grad).all()
    out, q = run("reference")
    (grad,) = torch.autograd.grad(out.square().sum(), q, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), q)
    assert second is not None and torch.isfinite(second).all()


@pytest.mark.parametrize("variant", ["neighborhood_attention_2d", "sliding_window_attention"])
def test_vmap_of_the_tiled_kernel_raises_not_supported(variant: str) -> None:
    q = torch.randn(3, 1, 2, 12, 4) if variant == "sliding_window_attention" else torch.randn(3, 1, 2, 6, 6, 4)

    def run(x: torch.Tensor, impl: str) -> torch.Tensor:
        if variant == "sliding_window_attention":
            return sliding_window_attention(x, x, x, 3, impl=impl)
        return neighborhood_attention_2d(x, x, x, 3, impl=impl)

    with pytest.raises(NotSupportedError, match=r"tiled.*does not run under torch.func.vmap"):
        torch.func.vmap(lambda x: run(x, "tiled"))(q)
    mapped = torch.func.vmap(lambda x: run(x, "reference"))(q)  # the reference does
    torch.testing.assert_close(mapped, torch.stack([run(x, "tiled") for x in q]))


@pytest.mark.parametrize("impl", ["auto", "chunked", "fft", "recurrent", "reference"])
def test_jit_trace_of_lmu_memory_matches_eager(impl: str) -> None:
    x = torch.randn(2, 70, 3)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return lmu_memory(t, 6, 20.0, impl=impl)

    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(fn, (x,), check_trace=False)
    other = torch.randn(2, 70, 3)
    torch.testing.assert_close(traced(other), fn(other))


@pytest.mark.parametrize("impl", ["auto", "direct", "fft", "reference"])
def test_jit_trace_of_base_conv_matches_eager(impl: str) -> None:
    kernel, weight, bias = torch.randn(3, 5), torch.randn(3, 3), torch.randn(3)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return base_conv(t, kernel, weight, bias, use_act=True, impl=impl)

    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(fn, (torch.randn(2, 40, 3),), check_trace=False)
    other = torch.randn(2, 40, 3)
    torch.testing.assert_close(traced(other), fn(other))

"""Compiled FlexAttention on CPU at lengths that are not multiples of its 128-token block.

torch 2.13's CPU kernel reads keys past the end of the key tensor and writes scores past its score buffer for
key blocks of length 8 mod 16 under AVX2 (see :mod:`attnzoo.ops.flex`); attnzoo pads such sequences to the
block size. The inputs here are followed in memory by NaN, so any read past their end shows in the output
instead of depending on what the allocator left there. The length checks run under the host's vector ISA and
again with inductor forced to AVX2 (``cpp.simdlen = 256``, as on an AVX2-only machine) where the host has it.
The full sweep of lengths 1-300 is marked ``slow``: ``python3 -m pytest -m slow`` runs it (about 1.5 min).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from torch._inductor.cpu_vec_isa import valid_vec_isa_list

from attnzoo.masks import dense_mask
from attnzoo.ops import flex, neighborhood_attention_1d, sliding_window_attention
from attnzoo.ops.flex import BLOCK_SIZE, padded_length, padded_mask_mod
from attnzoo.ops.halo import blocked
from attnzoo.ops.neighborhood import tiled as neighborhood_tiled
from attnzoo.ops.sliding_window import grouped
from attnzoo.ops.sliding_window import tiled as sliding_window_tiled
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern
from attnzoo.ops.window import windowed

AWKWARD_LENGTHS = (1, 2, 7, 8, 40, 63, 100, 127, 129, 255, 300)
ISAS = ("host", "avx2")


@contextmanager
def vector_isa(name: str) -> Iterator[None]:
    """Compile under the host's ISA, or under AVX2 with dynamo's caches cleared before and after, so that no
    kernel compiled for one ISA is reused under the other."""
    if name == "host":
        yield
        return
    if not any(isa.bit_width() == 256 for isa in valid_vec_isa_list()):
        pytest.skip("the host has no 256-bit vector ISA (AVX2) for inductor")
    torch._dynamo.reset()
    try:
        with torch._inductor.config.patch({"cpp.simdlen": 256}):
            yield
    finally:
        torch._dynamo.reset()


def nan_guarded(*shape: int) -> torch.Tensor:
    """A contiguous random tensor directly followed in memory by NaN."""
    size = torch.Size(shape).numel()
    storage = torch.full((size + 4096,), float("nan"))
    storage[:size] = torch.randn(size)
    return storage[:size].view(shape)


def window_error(length: int) -> float:
    """Largest deviation of compiled Flex from the float64 reference: 7-key window, B=1, H=2, D=16."""
    q, k, v = (nan_guarded(1, 2, length, 16) for _ in range(3))
    out = sliding_window_attention(q, k, v, window=7, is_causal=False, impl="flex")
    ref = sliding_window_attention(q.double(), k.double(), v.double(), window=7, is_causal=False, impl="reference")
    return (out.double() - ref).abs().nan_to_num(float("inf")).max().item()


def assert_window_matches_reference(lengths: tuple[int, ...] | range) -> None:
    errors = {length: window_error(length) for length in lengths}
    bad = {length: error for length, error in errors.items() if not error <= 2e-5}
    assert not bad, f"compiled Flex deviates from the reference at lengths {bad}"


@pytest.mark.parametrize("isa", ISAS)
def test_window_at_awkward_lengths_matches_reference(isa) -> None:
    with vector_isa(isa):
        assert_window_matches_reference(AWKWARD_LENGTHS)


def test_compiled_flex_has_its_own_recompile_limit() -> None:
    """Past ``torch._dynamo.config.recompile_limit`` (8 by default, 1 here) torch would silently run eager Flex,
    which materialises every score; the library's compiled region has its own limit, so three new compiled
    variants (padded lengths 128, 256, 384) still compile."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True):
        assert_window_matches_reference((40, 129, 300))


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
def test_window_at_every_length_up_to_300_matches_reference(isa) -> None:
    with vector_isa(isa):
        assert_window_matches_reference(range(1, 301))


def test_issue_case_neighborhood_1d_with_bias_under_avx2() -> None:
    """The reported case (NA-1D, kernel 7, dilation 2, N=40, D=16, the RPB as a score_mod, which is evaluated
    on padded positions too) under AVX2; ``tests/test_neighborhood.py`` runs it under the host's ISA."""
    q, k, v = (nan_guarded(1, 2, 40, 16) for _ in range(3))
    rpb = torch.randn(2, 13)
    with vector_isa("avx2"):
        out = neighborhood_attention_1d(q, k, v, 7, dilation=2, rpb=rpb, impl="flex")
    ref = neighborhood_attention_1d(q.double(), k.double(), v.double(), 7, dilation=2, rpb=rpb.double(),
                                    impl="reference")
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


@pytest.mark.parametrize("length", [1, 40, 128, 129])
def test_padded_mask_hides_padding_and_leaves_no_row_empty(length) -> None:
    pattern = SlidingWindowPattern(length, 7, False)
    padded = padded_length(length, "cpu")
    assert padded % BLOCK_SIZE == 0 and 0 <= padded - length < BLOCK_SIZE
    mask = dense_mask(padded_mask_mod(pattern.mask_mod(), length, "cpu"), padded, padded)
    assert torch.equal(mask[:length, :length], dense_mask(pattern.mask_mod(), length, length))
    assert not mask[:length, length:].any()  # no real query sees a padded key
    assert torch.equal(mask[length:, length:], torch.eye(padded - length, dtype=torch.bool))
    assert not mask[length:, :length].any()
    assert padded_length(length, "cuda:1") == length  # the padding is a CPU measure only


@pytest.mark.parametrize("module", [flex, neighborhood_tiled, sliding_window_tiled, grouped, windowed, blocked],
                         ids=lambda m: m.__name__)
def test_plan_caches_key_on_the_full_device(module) -> None:
    """Plans and block masks are cached per device string: ``device.type`` would hand a cuda:0 plan to cuda:1
    tensors. (Without two GPUs only the call sites can be checked; the GPU test below runs both devices.)"""
    source = inspect.getsource(module)
    assert "device.type" not in source and "str(query.device)" in source


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.gpu
def test_second_cuda_device_gets_its_own_plan() -> None:
    for device in ("cuda:0", "cuda:1"):
        q, k, v = (torch.randn(1, 2, 40, 16, device=device) for _ in range(3))
        for impl in ("tiled", "flex"):
            out = neighborhood_attention_1d(q, k, v, 7, impl=impl)
            ref = neighborhood_attention_1d(q, k, v, 7, impl="reference")
            assert out.device == q.device
            torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)

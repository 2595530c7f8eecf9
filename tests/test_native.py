"""The native local-attention kernel (attnzoo.ops.native): every ISA build against the float64 reference, forward
and backward; threads, slabs, GQA, sinks; the build (cache, missing or failing compiler); torch.compile; memory.

The registry-wide contract (tests/test_contract.py) already runs ``impl="native"`` through every case of the
neighborhood and sliding-window specs; here are the properties specific to the kernel."""

from __future__ import annotations

import pytest
import torch

from attnzoo.ops.native import build, local_plan, native_local_attention, supported_isas, unavailable_reason
from attnzoo.ops.native import plan as plan_module
from attnzoo.ops.neighborhood.functional import neighborhood_pattern
from attnzoo.ops.neighborhood.native import neighborhood_plan_arguments
from attnzoo.ops.neighborhood.reference import neighborhood_reference
from attnzoo.ops.sliding_window.native import sliding_window_plan_arguments
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern
from attnzoo.ops.sliding_window.reference import sequence_reference
from attnzoo.registry import NotSupportedError

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

ISAS = supported_isas() if unavailable_reason() is None else ()
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5}

NEIGHBORHOODS = [  # grid, kernel, dilation, causal, head dim, value dim: odd dims exercise every lane tail
    # a last axis long enough for full query blocks of 8 float32 lanes (interior, dilated interior, borders)
    ((6, 29), (3, 7), 1, False, 16, 16),
    ((5, 37), (3, 7), (1, 2), False, 8, 12),
    ((23,), 5, 2, True, 1, 3),
    ((9, 11), (3, 5), (2, 1), (False, True), 13, 70),
    ((12, 10), 7, 1, False, 32, 32),
    ((5, 6, 7), 3, 1, (False, False, True), 9, 8),
    ((8, 7, 9), (3, 5, 3), (2, 1, 3), False, 33, 17),
]


def _random(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype).requires_grad_()


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, grad.to(out.dtype))


def _assert_all_close(ours: tuple[torch.Tensor, ...], reference: tuple[torch.Tensor, ...], dtype: torch.dtype,
                      what: str) -> None:
    for name, a, b in zip(("out", "dq", "dk", "dv", "drpb"), ours, reference):
        scale = max(1.0, b.abs().max().item())
        error = (a.double() - b).abs().max().item() / scale
        assert error < TOLERANCE[dtype], f"{what}: {name} differs by {error:.2e} (relative to {scale:.2f})"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", NEIGHBORHOODS, ids=lambda c: "x".join(map(str, c[0])))
def test_neighborhood_matches_the_reference_forward_and_backward(case, dtype, isa) -> None:
    grid, kernel, dilation, causal, dim, value_dim = case
    pattern = neighborhood_pattern(grid, kernel, dilation, causal)
    heads, kv_heads = 4, 2
    q = _random((2, heads, *grid, dim), dtype, 0)
    k = _random((2, kv_heads, *grid, dim), dtype, 1)
    v = _random((2, kv_heads, *grid, value_dim), dtype, 2)
    rpb = _random((heads, *(2 * n - 1 for n in pattern.kernel_size)), dtype, 3)
    out = native_local_attention(q, k, v, "neighborhood", neighborhood_plan_arguments(pattern), scale=0.3, rpb=rpb,
                                 isa=isa)
    exact = [t.detach().double().requires_grad_() for t in (q, k, v, rpb)]
    repeated = [t.repeat_interleave(heads // kv_heads, dim=1) for t in exact[1:3]]
    expected = neighborhood_reference(exact[0], *repeated, pattern=pattern, rpb=exact[3], scale=0.3)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _assert_all_close((out, *_grads(out, [q, k, v, rpb], grad)),
                      (expected, *_grads(expected, exact, grad)), dtype, f"{isa} {dtype} {case}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("causal,window,sinks", [(True, 8, 3), (False, 9, 2), (True, 64, 4), (False, 3, 0)])
def test_sliding_window_with_sinks_matches_the_reference(causal, window, sinks, isa) -> None:
    pattern = SlidingWindowPattern(41, window, causal, sinks)
    q, k, v = (_random((2, 3, 41, 10), torch.float64, seed) for seed in range(3))
    out = native_local_attention(q, k, v, "sliding_window", sliding_window_plan_arguments(pattern), scale=0.4,
                                 isa=isa)
    exact = [t.detach().requires_grad_() for t in (q, k, v)]
    expected = sequence_reference(*exact, pattern=pattern, scale=0.4)
    grad = torch.randn(expected.shape, dtype=torch.float64)
    _assert_all_close((out, *_grads(out, [q, k, v], grad)), (expected, *_grads(expected, exact, grad)),
                      torch.float64, f"{isa} causal={causal} w={window} s={sinks}")


def test_results_do_not_depend_on_threads_or_slabs(monkeypatch) -> None:
    """Work items are scheduled dynamically and the backward runs in slabs of KV heads: neither may change a bit."""
    pattern = neighborhood_pattern((14, 15), 5, 1, False)
    plan = neighborhood_plan_arguments(pattern)
    q, k, v = (_random((3, 4, 14, 15, 8), torch.float32, seed) for seed in range(3))
    rpb = _random((4, 9, 9), torch.float32, 3)

    def run() -> tuple[torch.Tensor, ...]:
        out = native_local_attention(q, k, v, "neighborhood", plan, scale=0.35, rpb=rpb)
        return (out, *torch.autograd.grad(out, (q, k, v, rpb), torch.ones_like(out)))

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run()
        torch.set_num_threads(max(2, threads))
        several = run()
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(plan_module, "SLAB_BYTES", 1)  # one KV head per slab: 12 slabs
    slabbed = run()
    for a, b, c in zip(single, several, slabbed):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_an_isa_the_cpu_lacks_or_an_unknown_one_is_refused(monkeypatch) -> None:
    q = torch.randn(1, 1, 5, 4)
    plan = sliding_window_plan_arguments(SlidingWindowPattern(5, 3, True, 0))
    with pytest.raises(ValueError, match=r"isa='avx512': expected one of \['auto', 'generic', 'avx2'\]"):
        native_local_attention(q, q, q, "sliding_window", plan, scale=1.0, isa="avx512")
    if "avx2" not in ISAS:
        with pytest.raises(NotSupportedError, match="isa='avx2' needs a CPU with AVX2 and FMA"):
            native_local_attention(q, q, q, "sliding_window", plan, scale=1.0, isa="avx2")


def test_windows_that_move_backwards_are_refused() -> None:
    with pytest.raises(ValueError, match="start and end never decrease"):
        local_plan((4,), [torch.tensor([0, 1, 0, 1])], [torch.tensor([2, 2, 2, 2])], (1,), (2,))


def test_the_backward_memory_is_linear_in_the_sequence() -> None:
    """Peak memory of forward + backward at 8k tokens, window 64, against N x N scores: the P / dS workspace
    is N x window per head, nothing quadratic."""
    from attnzoo.bench.memory import peak_allocated_bytes

    n, window, heads, dim = 8192, 64, 2, 16
    pattern = SlidingWindowPattern(n, window, True, 0)
    plan = sliding_window_plan_arguments(pattern)
    q, k, v = (torch.randn(1, heads, n, dim, requires_grad=True) for _ in range(3))

    def step() -> None:
        native_local_attention(q, k, v, "sliding_window", plan, scale=0.25).sum().backward()

    peak = peak_allocated_bytes(step)
    linear = 4 * heads * n * (2 * window + 8 * dim)  # P and dS, plus the outputs and gradients
    assert peak <= 1.5 * linear, f"peak {peak / 2**20:.1f} MiB above {linear / 2**20:.1f} MiB"
    assert peak < 4 * heads * n * n / 20


def test_torch_compile_traces_the_custom_op() -> None:
    from attnzoo.layers import NeighborhoodAttention2D

    layer = NeighborhoodAttention2D(dim=16, num_heads=2, kernel_size=3, impl="native")
    x = torch.randn(2, 6, 7, 16, requires_grad=True)
    eager = layer(x)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), eager)
    grad_compiled, = torch.autograd.grad(compiled(x).sum(), x)
    grad_eager, = torch.autograd.grad(layer(x).sum(), x)
    torch.testing.assert_close(grad_compiled, grad_eager)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_computed_in_float32(dtype) -> None:
    """The float32 kernel on the converted inputs, the output rounded back once: within one rounding of the
    float64 reference on the rounded inputs, gradients in the inputs' dtype."""
    pattern = neighborhood_pattern((9, 11), 5, 1, False)
    q, k, v = (_random((2, 2, 9, 11, 16), dtype, seed) for seed in range(3))
    out = native_local_attention(q, k, v, "neighborhood", neighborhood_plan_arguments(pattern), scale=0.25)
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    expected = neighborhood_reference(*exact, pattern=pattern, rpb=None, scale=0.25)
    assert out.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert (out.double() - expected).abs().max() <= eps * expected.abs().max()
    grads = torch.autograd.grad(out, [q, k, v], torch.ones_like(out))
    expected_grads = torch.autograd.grad(expected, exact, torch.ones_like(expected))
    for got, want in zip(grads, expected_grads):
        assert got.dtype == dtype
        assert (got.double() - want).abs().max() <= 4 * eps * want.abs().max()


def test_the_fake_kernels_agree_with_the_real_ones_on_permuted_inputs() -> None:
    """``torch.library.opcheck`` (fake shapes and strides, schema, autograd registration) with heads-major
    views as inputs: inductor asserts the real outputs' strides against the fake ones."""
    arguments = neighborhood_plan_arguments(neighborhood_pattern((4, 5), 3, 1, False))
    q, k, v = (_random((1, 20, 2, 8), torch.float32, seed).detach().transpose(1, 2).requires_grad_()
               for seed in range(3))
    rpb = _random((2, 5, 5), torch.float32, 3)
    forward = (q, k, v, rpb.reshape(2, -1), "neighborhood", arguments, 0.3, 0)
    torch.library.opcheck(torch.ops.attnzoo.native_local_attention, forward)
    out, lse = torch.ops.attnzoo.native_local_attention(*forward)
    backward = (torch.randn_like(out).transpose(1, 2).contiguous().transpose(1, 2), q.detach(), k.detach(),
                v.detach(), rpb.detach().reshape(2, -1), out.detach(), lse.detach(), "neighborhood", arguments, 0.3, 0)
    torch.library.opcheck(torch.ops.attnzoo.native_local_attention_backward, backward)


def test_the_build_is_cached_and_a_missing_or_failing_compiler_is_reported(monkeypatch, tmp_path) -> None:
    path = build.build()
    assert path.exists() and build.build() == path  # the cache: the second call compiles nothing
    assert "-march=native" not in " ".join(build.COMMON_FLAGS + sum(build.ISA_FLAGS.values(), ()))
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("ATTNZOO_CXX", "no-such-compiler-here")
    with pytest.raises(build.NativeBuildError, match="no C\\+\\+ compiler"):
        build.build()
    monkeypatch.setenv("ATTNZOO_CXX", "false")  # a "compiler" that always fails
    with pytest.raises(build.NativeBuildError, match="compiling the native local-attention kernels failed"):
        build.build()
    assert not list(tmp_path.rglob(build.LIBRARY_NAME))  # nothing half-built is published


def test_a_fresh_build_from_an_empty_cache(monkeypatch, tmp_path) -> None:
    """The kernel sources include no torch header (what keeps the build to seconds, not minutes); a new cache
    directory gets its own library."""
    for name in build.SOURCES:
        includes = [line for line in (build.KERNEL_DIR / name).read_text().splitlines() if line.startswith("#include")]
        assert includes and not any("torch" in line or "ATen" in line for line in includes)
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path))
    path = build.build()
    assert path.exists() and path.is_relative_to(tmp_path)

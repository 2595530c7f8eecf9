"""LMU memory (paper 53): the Legendre system, its discretisation, and the agreement of the three forms."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from attnzoo.layers.lmu import LMUMixer
from attnzoo.ops.lmu import lmu_memory
from attnzoo.ops.lmu.legendre import impulse_response, legendre_continuous, legendre_discrete
from attnzoo.registry import NotSupportedError

IMPLS = ["chunked", "fft", "recurrent", "reference"]


def _x(batch: int = 2, n: int = 40, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, n, channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_continuous_system_matches_the_lmu_paper_closed_form() -> None:
    # order 2, θ = 1, written out by hand from A_ij = (2i+1)(-1 if i<j else (-1)^(i-j+1)), B_i = (2i+1)(-1)^i
    a, b = legendre_continuous(2, 1.0)
    torch.testing.assert_close(a, torch.tensor([[-1.0, -1.0], [3.0, -3.0]], dtype=torch.float64))
    torch.testing.assert_close(b, torch.tensor([1.0, -3.0], dtype=torch.float64))
    order, theta = 7, 3.5
    a, b = legendre_continuous(order, theta)
    for i in range(order):
        assert b[i] == pytest.approx((2 * i + 1) * (-1) ** i / theta)
        for j in range(order):
            sign = -1 if i < j else (-1) ** (i - j + 1)
            assert a[i, j] == pytest.approx((2 * i + 1) * sign / theta)


@pytest.mark.parametrize(("order", "theta"), [(1, 0.5), (6, 10.0), (12, 128.0)])
def test_zoh_discretisation_closed_form(order: int, theta: float) -> None:
    a, b = legendre_continuous(order, theta)
    a_d, b_d = legendre_discrete(order, theta)
    expm = torch.linalg.matrix_exp(a)
    torch.testing.assert_close(a_d, expm, rtol=0, atol=1e-12)
    torch.testing.assert_close(b_d, torch.linalg.solve(a, (expm - torch.eye(order, dtype=a.dtype)) @ b),
                               rtol=0, atol=1e-10)


def test_zoh_discretisation_matches_scipy_cont2discrete() -> None:
    signal = pytest.importorskip("scipy.signal")
    order, theta = 8, 16.0
    a, b = legendre_continuous(order, theta)
    a_d, b_d, *_ = signal.cont2discrete((a.numpy(), b.numpy()[:, None], torch.ones(1, order).numpy(),
                                         torch.zeros(1).numpy()), dt=1.0, method="zoh")
    a_ours, b_ours = legendre_discrete(order, theta)
    torch.testing.assert_close(a_ours, torch.from_numpy(a_d), rtol=0, atol=1e-12)
    torch.testing.assert_close(b_ours, torch.from_numpy(b_d[:, 0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_impulse_response_is_powers_of_a_applied_to_b(impl: str) -> None:
    order, theta, n = 5, 9.0, 30
    a_d, b_d = legendre_discrete(order, theta)
    expected = torch.stack([torch.linalg.matrix_power(a_d, t) @ b_d for t in range(n)])
    impulse = torch.zeros(1, n, 1, dtype=torch.float64)
    impulse[0, 0, 0] = 1.0
    memory = lmu_memory(impulse, order, theta, impl=impl)
    torch.testing.assert_close(memory[0, :, 0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(impulse_response(order, theta, n), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", ["chunked", "fft", "recurrent"])
def test_parallel_recurrent_and_reference_agree_with_a_state(impl: str) -> None:
    x = _x(n=150)  # three 64-token chunks, the last one padded
    state = torch.randn(2, 3, 7, dtype=torch.float64)
    ref, ref_final = lmu_memory(x, 7, 12.0, initial_state=state, output_final_state=True, impl="reference")
    out, final = lmu_memory(x, 7, 12.0, initial_state=state, output_final_state=True, impl=impl)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("first", "second"), [("chunked", "chunked"), ("fft", "recurrent"), ("recurrent", "chunked"),
                                               ("fft", "reference")])
def test_feeding_in_two_pieces_with_the_state_carried_equals_feeding_whole(first: str, second: str) -> None:
    x = _x(n=57)
    whole, whole_final = lmu_memory(x, 6, 20.0, output_final_state=True, impl="reference")
    head, state = lmu_memory(x[:, :25], 6, 20.0, output_final_state=True, impl=first)
    tail, final = lmu_memory(x[:, 25:], 6, 20.0, initial_state=state, output_final_state=True, impl=second)
    torch.testing.assert_close(torch.cat([head, tail], dim=1), whole, rtol=0, atol=1e-10)
    torch.testing.assert_close(final, whole_final, rtol=0, atol=1e-10)


def test_token_by_token_decoding_equals_the_parallel_form() -> None:
    x = _x(n=20)
    state, steps = None, []
    for t in range(x.shape[1]):
        step, state = lmu_memory(x[:, t:t + 1], 4, 8.0, initial_state=state, output_final_state=True,
                                 impl="recurrent")
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), lmu_memory(x, 4, 8.0, impl="fft"), rtol=0, atol=1e-10)


def test_memory_holds_the_legendre_coefficients_of_the_window() -> None:
    """LMU paper eq. 3: u(t - θ') ≈ sum_i P̃_i(θ'/θ) m_i(t), shifted Legendre P̃_i(r) = P_i(2r - 1); a slow
    input is recovered at any delay inside the window (a wrong sign in A or B gives errors of order 1)."""
    order, theta, n = 12, 64.0, 600
    t = torch.arange(n, dtype=torch.float64)
    x = (torch.sin(2 * math.pi * t / 300) + 0.5 * torch.cos(2 * math.pi * t / 200)).reshape(1, n, 1)
    memory = lmu_memory(x, order, theta)[0, :, 0]  # (N, d)
    for delay in (0, 16, 32, 48):
        r = torch.tensor(2 * delay / theta - 1, dtype=torch.float64)
        legendre = [torch.ones_like(r), r]
        for i in range(1, order - 1):
            legendre.append(((2 * i + 1) * r * legendre[i] - i * legendre[i - 1]) / (i + 1))
        decoder = torch.stack(legendre)  # P_i(2 r' - 1), r' = θ'/θ
        decoded = memory[200:] @ decoder
        target = x[0, 200 - delay:n - delay, 0]
        assert (decoded - target).abs().max() < 0.05, f"delay {delay}"


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_with_initial_state(impl: str) -> None:
    x = _x(batch=1, n=5, channels=2).requires_grad_()
    state = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lmu_memory(x, 3, 4.0, initial_state=state, output_final_state=True, impl=impl)

    assert torch.autograd.gradcheck(fn, (x, state))


def test_bad_inputs_name_the_argument() -> None:
    x = _x(batch=1, n=4, channels=2)
    with pytest.raises(ValueError, match=r"x has shape \(4, 2\)"):
        lmu_memory(x[0], 3, 4.0)
    with pytest.raises(TypeError, match="x.dtype=torch.int64"):
        lmu_memory(x.long(), 3, 4.0)
    with pytest.raises(ValueError, match="at least one token"):
        lmu_memory(x[:, :0], 3, 4.0)
    with pytest.raises(ValueError, match="order=0"):
        lmu_memory(x, 0, 4.0)
    with pytest.raises(ValueError, match="theta=-1.0"):
        lmu_memory(x, 3, -1.0)
    with pytest.raises(ValueError, match=r"initial_state has shape \(1, 2, 4\); expected \(1, 2, 3\)"):
        lmu_memory(x, 3, 4.0, initial_state=torch.zeros(1, 2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="initial_state.dtype=torch.float32; expected x's dtype"):
        lmu_memory(x, 3, 4.0, initial_state=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="impl='scan'"):
        lmu_memory(x, 3, 4.0, impl="scan")
    with pytest.raises(NotSupportedError, match="fft: dtype=torch.float16"):
        lmu_memory(x.half(), 3, 4.0, impl="fft")


def test_layer_streams_in_pieces_in_eval_mode() -> None:
    layer = LMUMixer(dim=8, memory_size=6, theta=16.0).double().eval()
    x = _x(batch=2, n=30, channels=8)
    whole = layer(x)
    head, state = layer(x[:, :11], output_final_state=True)
    tail = layer(x[:, 11:], initial_state=state)
    torch.testing.assert_close(torch.cat([head, tail], dim=1), whole, rtol=0, atol=1e-12)


def test_layer_without_batch_norm_is_causal_in_training() -> None:
    layer = LMUMixer(dim=6, theta=8.0, batch_norm=False, impl="chunked").double().train()
    x = _x(batch=2, n=12, channels=6).requires_grad_()
    grad, = torch.autograd.grad(layer(x)[:, 5].sum(), x)
    assert (grad[:, 6:] == 0).all() and (grad[:, :6] != 0).any()


@pytest.mark.parametrize("impl", ["chunked", "fft", "recurrent"])
def test_reference_matches_the_fast_paths_at_a_larger_order(impl: str) -> None:
    """The reference spreads the impulse response ``(N + 1, d)`` into its Toeplitz kernel (not the ``(N, N, d, d)``
    powers it once indexed): still the same values as every other form."""
    x = _x(n=70).double()
    state = torch.randn(2, 3, 12, dtype=torch.float64)
    torch.testing.assert_close(lmu_memory(x, 12, 30.0, state, impl="reference"),
                               lmu_memory(x, 12, 30.0, state, impl=impl), atol=1e-10, rtol=0)


def test_reference_at_800_tokens_runs_in_small_memory() -> None:
    """The call that asked for 47 GB, ``(N, N, d, d)`` float64 at N = 800, d = 96, runs under a 6 GiB address
    space limit (the kernel is now ``(N, N, d)``, 0.5 GB)."""
    script = (
        "import resource, torch\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"
        "from attnzoo.ops.lmu import lmu_memory\n"
        "x = torch.randn(1, 800, 1, dtype=torch.float64)\n"
        "ref = lmu_memory(x, 96, 200.0, impl='reference')\n"
        "err = (ref - lmu_memory(x, 96, 200.0, impl='chunked')).abs().max().item()\n"
        "assert ref.shape == (1, 800, 1, 96) and err < 1e-8, err\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

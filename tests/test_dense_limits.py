"""Dense references refuse, before allocating anything, a score matrix larger than the machine's memory: the
inputs here are one small tensor expanded (stride 0) to sizes whose N x N scores would need terabytes."""

from __future__ import annotations

import pytest
import torch

from attnzoo.ops import agent_attention, fourier_karat, kernelized_rpe_attention, lightning_attention, \
    linear_attention, soft_attention
from attnzoo.ops.dense import check_dense_size, dense_attention, physical_memory_bytes
from attnzoo.ops.lmu.functional import lmu_memory
from attnzoo.ops.neighborhood.functional import neighborhood_attention_1d
from attnzoo.ops.sliding_window.functional import sliding_window_attention
from attnzoo.registry import NotSupportedError

HUGE = 1 << 21  # tokens: 2^42 float32 scores per head, 17.6 TB


def _huge(*shape: int) -> torch.Tensor:
    return torch.zeros((1,) * len(shape)).expand(*shape)


def test_dense_attention_refuses_terabytes_of_scores() -> None:
    q = _huge(1, 2, HUGE, 8)
    with pytest.raises(NotSupportedError, match=rf"score matrix of shape \(1, 2, {HUGE}, {HUGE}\) \(torch.float32\) "
                                                r"needs 35,184,372,088,832 bytes, more than .* use a fast path"):
        dense_attention(q, q, q)


@pytest.mark.parametrize("op", [
    lambda q: sliding_window_attention(q, q, q, 5, impl="reference"),
    lambda q: neighborhood_attention_1d(q, q, q, 5, impl="reference"),
])
def test_pattern_references_refuse_before_building_the_mask(op) -> None:  # noqa: ANN001
    with pytest.raises(NotSupportedError, match=rf"shape \(1, 1, {HUGE}, {HUGE}\).*bytes"):
        op(_huge(1, 1, HUGE, 4))


def test_lmu_reference_refuses_its_huge_kernel_and_suggests_the_fast_paths() -> None:
    with pytest.raises(NotSupportedError, match=rf"Toeplitz kernel of shape \({HUGE}, {HUGE}, 4\).*'chunked' or 'fft'"):
        lmu_memory(_huge(1, HUGE, 1), 4, 8.0, impl="reference")


@pytest.mark.parametrize(("name", "op", "fast_path"), [
    ("agent", lambda q: agent_attention(q, q, q, _huge(1, 1, 4, 4), impl="reference"), "'gemm'"),
    ("karat", lambda q: fourier_karat(q, q, q, _huge(1, 1, HUGE, 2), _huge(1, 1, HUGE, 2), _huge(1, HUGE, 1),
                                      impl="reference"), "'blocked'"),
    ("kernelized", lambda q: kernelized_rpe_attention(q, q, q, feature_map="elu", impl="reference"), "'fft'"),
    ("lightning", lambda q: lightning_attention(q, q, q, impl="reference"), "'chunked' or 'recurrent'"),
    ("linear", lambda q: linear_attention(q, q, q, is_causal=False, impl="reference"), "'chunked' or 'recurrent'"),
    ("soft", lambda q: soft_attention(q, q, _huge(1, 1, 4, 4), impl="reference"), "'newton'"),
])
def test_other_n_by_n_references_refuse_up_front(name: str, op, fast_path: str) -> None:  # noqa: ANN001
    """Every reference that forms an N x N (or larger) tensor refuses it before allocating, naming a fast path."""
    with pytest.raises(NotSupportedError, match=rf"\(1, 1, {HUGE}, {HUGE}.*bytes.*{fast_path}"):
        op(_huge(1, 1, HUGE, 4))


def test_the_limit_is_the_machine_not_a_small_constant() -> None:
    limit = physical_memory_bytes()
    assert limit > 1 << 28
    check_dense_size("a tensor", (limit // 4,), torch.float32, "none")  # exactly the memory: allowed
    with pytest.raises(NotSupportedError, match="a tensor of shape"):
        check_dense_size("a tensor", (limit // 4 + 1,), torch.float32, "none")

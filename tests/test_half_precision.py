"""Half precision on a CPU without AVX-512 is declared slow: explain() and a one-time warning say so (auto does
not upcast behind the caller's back); with AVX-512, or in float32, nothing is said."""

from __future__ import annotations

import warnings

import pytest
import torch

import attnzoo
from attnzoo.ops import sliding_window_attention
from attnzoo.registry import CallFacts, dispatch


@pytest.fixture
def avx2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(dispatch, "_WARNED_HALF", set())


def test_explain_and_a_single_warning_on_avx2(avx2: None) -> None:
    q = torch.randn(1, 2, 16, 8, dtype=torch.bfloat16)
    assert "runs matrix multiplies far slower than float32" in attnzoo.explain(
        "sliding_window_attention", CallFacts.of([q]))
    with pytest.warns(UserWarning, match="sliding_window_attention: torch.bfloat16 on this CPU .* cast the inputs"):
        sliding_window_attention(q, q, q, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sliding_window_attention(q, q, q, 4)  # once per variant and dtype


@pytest.mark.parametrize("capability", ["AVX512", "AVX2"])
def test_nothing_is_said_in_float32_or_with_avx512(monkeypatch: pytest.MonkeyPatch, capability: str) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(dispatch, "_WARNED_HALF", set())
    dtype = torch.float32 if capability == "AVX2" else torch.bfloat16
    q = torch.randn(1, 2, 16, 8, dtype=dtype)
    assert "note:" not in attnzoo.explain("sliding_window_attention", CallFacts.of([q]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sliding_window_attention(q, q, q, 4)

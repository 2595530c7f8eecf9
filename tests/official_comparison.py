"""Helpers shared by the DLGSANet tests (tests/test_dynamic_local.py, tests/test_sparse_global.py): seeded float64
inputs, a tight comparison, and one official channels-first module against our channels-last layer."""

from __future__ import annotations

import torch
from torch import nn


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-12) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def assert_layer_matches_official(official: nn.Module, ours: nn.Module, x: torch.Tensor) -> None:
    """``ours`` on ``(B, H, W, C)`` equals ``official`` on ``(B, C, H, W)`` input ``x`` (requiring grad), with
    ``official``'s state dict loaded: outputs, and the gradients of ``x`` and of every official parameter (by name)."""
    expected = official(x)
    out = ours(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    close(out, expected)
    cotangent = randn(*out.shape, seed=4)
    names = [name for name, _ in official.named_parameters()]
    got = torch.autograd.grad(out, [x, *(ours.get_parameter(name) for name in names)], cotangent)
    want = torch.autograd.grad(expected, [x, *official.parameters()], cotangent)
    for g, w in zip(got, want, strict=True):
        close(g, w, atol=1e-10)

"""Randomized Hadamard rotations (QuaRot, Ashkboos et al., arXiv 2404.00456; used by RSQ, arXiv 2503.01820):
``Q = diag(s) · H_n / √n`` with random signs ``s ∈ {±1}ⁿ`` and a Hadamard matrix ``H_n`` (``H Hᵀ = n I``), so
``Q`` is orthogonal and ``x Wᵀ = (x Q)(W Q)ᵀ`` exactly: the rotation is folded into the weight (``W ← W Q``) and
applied to the layer input (``x ← x Q``), spreading outlier channels over all of them before quantization.

``H_n = H_m ⊗ H_{2^k}`` for ``n = m · 2^k``: a Sylvester matrix (``m = 1``) or a Paley-I Hadamard matrix of order
``m = p + 1`` for a prime ``p ≡ 3 (mod 4)`` (12, 20, 24, 28, 44, 48, 60, 72, ...: 384 = 12 · 32, 1536 = 12 · 128,
576 = 72 · 8). :class:`RandomizedHadamard` applies ``x ↦ x Q`` without the ``n × n`` matrix: the signs, a fast
Walsh-Hadamard transform over the ``2^k`` axis (``k`` butterfly steps) and the small ``m × m`` matrix, in
``O(n (log n + m))`` per row. Verified (``tests/test_quant_rsq.py``): ``H Hᵀ = n I`` for every construction
used, the module against the dense ``x Q``, and orthogonality ``Q Qᵀ = I``, all in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.validation import check_int


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))


def paley_hadamard(order: int) -> torch.Tensor:
    """The Paley-I Hadamard matrix of ``order = p + 1`` (``p`` prime, ``p ≡ 3 mod 4``), float64:
    ``I + [[0, 1ᵀ], [−1, J]]`` with the Jacobsthal matrix ``J_ij = χ(j − i)`` (χ the Legendre symbol)."""
    p = order - 1
    if not (_is_prime(p) and p % 4 == 3):
        raise ValueError(f"order={order}: Paley I needs order - 1 a prime congruent to 3 mod 4")
    squares = {(i * i) % p for i in range(1, p)}
    chi = torch.tensor([0.0] + [1.0 if r in squares else -1.0 for r in range(1, p)], dtype=torch.float64)
    index = torch.arange(p)
    jacobsthal = chi[(index[None, :] - index[:, None]) % p]
    core = torch.zeros(order, order, dtype=torch.float64)
    core[0, 1:], core[1:, 0], core[1:, 1:] = 1.0, -1.0, jacobsthal
    return torch.eye(order, dtype=torch.float64) + core


def hadamard_factor(n: int) -> int:
    """The smallest ``m`` (1 or a Paley order) with ``n = m · 2^k``."""
    check_int("n", n, 1)
    for m in range(1, n + 1):
        if n % m == 0 and (n // m) & (n // m - 1) == 0 and (m == 1 or (_is_prime(m - 1) and (m - 1) % 4 == 3)):
            return m
    raise ValueError(f"no Hadamard matrix of order {n} is constructed here: expected n = m · 2^k with m = 1 or "
                     "m - 1 a prime congruent to 3 mod 4 (e.g. 384 = 12 · 32)")


def sylvester_hadamard(n: int) -> torch.Tensor:
    """``H_{2^k}`` (float64)."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def hadamard_matrix(n: int) -> torch.Tensor:
    """``H_n = H_m ⊗ H_{2^k}`` (float64, entries ±1, ``H Hᵀ = n I``)."""
    m = hadamard_factor(n)
    small = torch.ones(1, 1, dtype=torch.float64) if m == 1 else paley_hadamard(m)
    return torch.kron(small, sylvester_hadamard(n // m))


def walsh_hadamard(x: torch.Tensor) -> torch.Tensor:
    """``x H_{2^k}`` over the last axis (length ``2^k``), by butterflies."""
    n = x.shape[-1]
    h = 1
    while h < n:
        v = x.reshape(*x.shape[:-1], n // (2 * h), 2, h)
        x = torch.stack((v[..., 0, :] + v[..., 1, :], v[..., 0, :] - v[..., 1, :]), dim=-2).reshape(x.shape)
        h *= 2
    return x


class RandomizedHadamard(nn.Module):
    """``x ↦ x Q``, ``Q = diag(s) H_n / √n`` over the last axis (see the module docstring).

    Args:
        n: the size of the last axis.
        seed: seeds the random signs (``torch.Generator``), so a rotation is reproducible.

    >>> rot = RandomizedHadamard(384, seed=0)
    >>> x = torch.randn(2, 384, dtype=torch.float64)
    >>> bool(torch.allclose(rot(x).norm(dim=-1), x.norm(dim=-1)))
    True
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        self.n, self.m = n, hadamard_factor(n)
        signs = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed)) * 2 - 1
        self.register_buffer("signs", signs.to(torch.int8))
        small = torch.ones(1, 1) if self.m == 1 else paley_hadamard(self.m)
        self.register_buffer("small", small.to(torch.int8))

    def matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The dense ``Q`` (for tests and folding checks)."""
        return self.signs.to(dtype)[:, None] * hadamard_matrix(self.n).to(dtype) / math.sqrt(self.n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n:
            raise ValueError(f"x has shape {tuple(x.shape)}: its last axis must be {self.n}")
        v = (x * self.signs.to(x.dtype)).reshape(*x.shape[:-1], self.m, self.n // self.m)
        v = walsh_hadamard(v)
        if self.m > 1:
            v = torch.einsum("...ij,ik->...kj", v, self.small.to(x.dtype))
        return v.reshape(x.shape) / math.sqrt(self.n)

    def extra_repr(self) -> str:
        return f"n={self.n} ({self.m} x {self.n // self.m})"

"""The Legendre delay system of the LMU (Voelker et al. 2019, eq. 1-2) and its zero-order-hold discretisation.

Continuous time, order ``d``, window ``θ``: ``θ ṁ(t) = A m(t) + B u(t)`` with, for ``i, j = 0 .. d-1``::

    A_ij = (2i + 1) · (-1 if i < j else (-1)^(i - j + 1)),      B_i = (2i + 1) (-1)^i

(here divided by θ, as LMUFormer's ``lmu_cell.py`` does). With time step 1 and the input held constant over a
step (ZOH, scipy's ``cont2discrete(method="zoh")``), ``Ā = e^A`` and ``B̄ = A⁻¹ (e^A - I) B``, computed as the
top blocks of ``exp([[A, B], [0, 0]])`` (no inverse of A needed). The memory's impulse response is
``H_t = Ā^t B̄``.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def legendre_continuous(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous ``A`` ``(d, d)`` and ``B`` ``(d,)`` (float64), already divided by ``theta``."""
    q = torch.arange(order, dtype=torch.float64)
    rate = (2 * q + 1) / theta
    i, j = q[:, None], q[None, :]
    sign = torch.where(i < j, torch.tensor(-1.0, dtype=torch.float64), _alternating(i - j + 1))
    return rate[:, None] * sign, rate * _alternating(q)


def _alternating(k: torch.Tensor) -> torch.Tensor:
    """``(-1) ** k`` for integer-valued ``k >= 0``, written as ``1 - 2 (k mod 2)``: torch 2.13's dynamo graph run
    eagerly gets ``(-1.0) ** tensor`` wrong (-1 everywhere), a silently wrong memory under ``torch.compile``."""
    return 1 - 2 * torch.remainder(k, 2)


@lru_cache(maxsize=64)
def legendre_discrete(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ZOH-discretised ``Ā`` ``(d, d)`` and ``B̄`` ``(d,)`` for a time step of 1 (float64, CPU, cached)."""
    a, b = legendre_continuous(order, theta)
    block = torch.zeros(order + 1, order + 1, dtype=torch.float64)
    block[:order, :order], block[:order, order] = a, b
    expm = torch.linalg.matrix_exp(block)
    return expm[:order, :order], expm[:order, order]


def power_sequence(matrix: torch.Tensor, vectors: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, *vectors.shape)``: entry ``t`` is ``matrix^t`` applied to each vector (last dim), by doubling.

    ``log2(n)`` rounds, each applying ``matrix^(2^k)`` to all the entries so far: O(n · d² · V) work in
    O(log n) batched products.
    """
    out, power = vectors.unsqueeze(0), matrix
    while out.shape[0] < n:
        out = torch.cat([out, out @ power.mT], dim=0)
        power = power @ power
    return out[:n]


@lru_cache(maxsize=8)  # (n, d) float64 each: a few recent lengths
def impulse_response(order: int, theta: float, n: int) -> torch.Tensor:
    """``H`` ``(n, d)`` with ``H_t = Ā^t B̄`` (float64, CPU, cached): the memory of a unit impulse at t = 0."""
    a, b = legendre_discrete(order, theta)
    return power_sequence(a, b, n)

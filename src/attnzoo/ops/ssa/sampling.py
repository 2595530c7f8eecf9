"""The locally biased sampler of stochastically subsampled attention (SSA; Hussain, Zaki, Subramanian, KDD 2023,
arXiv 2306.01705): which keys each query segment attends in one training step.

The paper samples the attention connectivity with a bias towards nearby keys, in a structured way (segments of
queries sharing one key sample, shared across heads) so that dense GEMMs still apply; its official repository
(``shamim-hussain/ssa``) holds no code, so the scheme below is this library's, built to that description and to
make the inclusion probabilities exact (for the Horvitz-Thompson weights and the unbiasedness test):

- the ``N`` tokens form ``ceil(N / s)`` segments of ``s = segment_size`` (the last may be shorter), queries and keys
  alike;
- query segment ``b`` keeps every key of the segments within ``local_segments`` of it (the local window; causal:
  ``b - local_segments .. b``);
- of the ``F_b`` keys of the other (causal: earlier) segments it keeps ``F_b / subsample_ratio`` in expectation,
  locally biased: ``x_bc = min(|c|, lambda_b (1 + |b - c|)^-locality)`` keys of segment ``c``, ``lambda_b`` set by
  water-filling so that the ``x_bc`` add up to ``F_b / subsample_ratio`` (a segment gets at most all its keys);
  so about ``1 / subsample_ratio`` of the attention's far connections survive, as a keep probability of dropout
  would leave them, but more of the near ones;
- each step, segment ``c``'s keys are put in a uniformly random order (one order per step, shared by every query
  segment) and query segment ``b`` takes the first ``floor(x_bc)`` of them plus one more with probability
  ``frac(x_bc)``.

So key ``j`` of segment ``c`` is in query segment ``b``'s sample with probability exactly ``pi_bj = x_bc / |c|``
(1 in the local window), every key has ``pi > 0``, the sample size is fixed up to the rounding of the fractional
parts (``expected_keys``), and no query segment samples a later segment when causal (the causal mask
inside its own segment is the op's). ``subsample_ratio = 1`` keeps every key: dense attention.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from attnzoo.validation import check_flag, check_int, check_real


@dataclass(frozen=True)
class SSASample:
    """One draw of the sampler: ``key_index`` ``(ceil(N / s), K)`` int64, the keys of each query segment (``-1``
    pads a row), ``inclusion`` ``(ceil(N / s), K)`` float64, each sampled key's inclusion probability ``pi`` (1 at
    the padding), and the ``segment_size`` ``s`` they were drawn for."""

    key_index: torch.Tensor
    inclusion: torch.Tensor
    segment_size: int


def check_sampler(length: int, segment_size: int, subsample_ratio: float, local_segments: int,
                  locality: float) -> None:
    """The sampler's options: ``1 <= segment_size <= N``, ``subsample_ratio >= 1``, ``local_segments >= 0``,
    ``locality >= 0``."""
    check_int("segment_size", segment_size)
    if segment_size > length:
        raise ValueError(f"segment_size={segment_size}: expected at most the sequence length N={length}")
    check_real("subsample_ratio", subsample_ratio, minimum=1.0, inclusive=True)
    check_int("local_segments", local_segments, minimum=0)
    check_real("locality", locality, minimum=0.0, inclusive=True)


def _water_fill(sizes: np.ndarray, weights: np.ndarray, budget: float) -> np.ndarray:
    """``x = min(sizes, lambda · weights)`` with ``sum(x) = budget`` (``budget <= sum(sizes)``)."""
    x = np.zeros_like(sizes, dtype=np.float64)
    free = np.ones(len(sizes), dtype=bool)
    remaining = float(budget)
    while free.any() and remaining > 0:
        lam = remaining / weights[free].sum()
        capped = free & (lam * weights >= sizes)
        if not capped.any():
            x[free] = lam * weights[free]
            break
        x[capped] = sizes[capped]
        remaining -= sizes[capped].sum()
        free &= ~capped
    return x


@functools.lru_cache(maxsize=32)
def _plan(length: int, segment_size: int, subsample_ratio: float, is_causal: bool, local_segments: int,
          locality: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per query segment and slot: the key segment, the rank in its random order, the probability that the slot
    is used and the inclusion probability of its key; ``(ceil(N / s), K)`` each, ``K`` the most slots of a row."""
    segments = math.ceil(length / segment_size)
    sizes = np.minimum(segment_size, length - segment_size * np.arange(segments)).astype(np.float64)
    rows = []
    for b in range(segments):
        candidates = np.arange(b + 1 if is_causal else segments)
        distance = np.abs(b - candidates)
        near = distance <= local_segments
        x = np.where(near, sizes[candidates], 0.0)
        far = ~near
        x[far] = _water_fill(sizes[candidates][far], (1.0 + distance[far]) ** -locality,
                             sizes[candidates][far].sum() / subsample_ratio)
        rows.append((candidates, x))
    tables = []
    for candidates, x in rows:
        whole = np.floor(x + 1e-9)
        fraction = np.where(x - whole > 1e-9, x - whole, 0.0)
        counts = (whole + (fraction > 0)).astype(np.int64)  # slots of each key segment: ceil(x_bc)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(counts.sum()) - starts
        keep = np.where(rank < np.repeat(whole, counts), 1.0, np.repeat(fraction, counts))
        tables.append((np.repeat(candidates, counts), rank, keep, np.repeat(x / sizes[candidates], counts)))
    width = max(len(t[0]) for t in tables)
    block, rank = np.zeros((segments, width), np.int64), np.zeros((segments, width), np.int64)
    keep, inclusion = np.zeros((segments, width)), np.ones((segments, width))
    for b, (row_block, row_rank, row_keep, row_inclusion) in enumerate(tables):
        used = len(row_block)
        block[b, :used], rank[b, :used], keep[b, :used], inclusion[b, :used] = (row_block, row_rank, row_keep,
                                                                                row_inclusion)
    return tuple(torch.from_numpy(a) for a in (block, rank, keep, inclusion))


@torch.compiler.assume_constant_result
def ssa_plan(length: int, segment_size: int, subsample_ratio: float, is_causal: bool, local_segments: int,
             locality: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_plan`, cached per setting; a constant for ``torch.compile`` (built once, outside the graph)."""
    return _plan(length, segment_size, float(subsample_ratio), is_causal, local_segments, float(locality))


def expected_keys(length: int, segment_size: int, subsample_ratio: float = 4.0, is_causal: bool = True,
                  local_segments: int = 1, locality: float = 1.0) -> torch.Tensor:
    """``(ceil(N / s),)``: the expected number of keys each query segment samples (``sum_c x_bc``)."""
    _, _, keep, _ = ssa_plan(length, segment_size, subsample_ratio, is_causal, local_segments, locality)
    return keep.sum(-1)


def ssa_sample(length: int, segment_size: int, subsample_ratio: float = 4.0, is_causal: bool = True,
               local_segments: int = 1, locality: float = 1.0, *, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> SSASample:
    """Draw one :class:`SSASample` for ``length`` tokens (see the module docstring); random numbers from
    ``generator`` (a ``torch.Generator`` on ``device``; ``None``: torch's default generator, so
    ``torch.manual_seed`` makes it reproducible). Cost per draw O(N log s + ceil(N / s) · K); the plan is built
    once per setting (O(ceil(N / s)^2) in Python).

    >>> sample = ssa_sample(64, 8, subsample_ratio=4.0, generator=torch.Generator().manual_seed(0))
    >>> [round(k, 6) for k in expected_keys(64, 8, subsample_ratio=4.0).tolist()]  # local + 1/4 of the rest
    [8.0, 16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0]
    >>> sample.key_index.shape[0], int((sample.key_index[1] >= 0).sum())  # segment 1: segments 0 and 1 whole
    (8, 16)
    """
    check_sampler(length, segment_size, subsample_ratio, local_segments, locality)
    check_flag("is_causal", is_causal)
    block, rank, keep, inclusion = (t.to(device) for t in ssa_plan(length, segment_size, subsample_ratio, is_causal,
                                                                    local_segments, locality))
    segments = block.shape[0]
    position = torch.arange(segments * segment_size, device=device).view(segments, segment_size)
    order = torch.rand(segments, segment_size, generator=generator, device=device).masked_fill(position >= length, 2.0)
    shuffled = position.gather(1, order.argsort(dim=1))  # each segment's keys in a random order, padding last
    used = torch.rand(keep.shape, generator=generator, device=device, dtype=torch.float64) < keep
    key_index = torch.where(used, shuffled[block, rank], -1)
    return SSASample(key_index, torch.where(used, inclusion, 1.0), segment_size)

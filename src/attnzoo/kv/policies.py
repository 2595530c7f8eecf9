"""KV-cache policies: which cached tokens a softmax-attention layer keeps, and at what precision.

A policy sees, for one layer, the positions of the tokens held (``(B, Hkv, L)``, per K/V head: heads may keep
different tokens, as in H2O and kvpress' ``ScorerPress``), the attention each one has received so far and from how
many queries, and returns the ``(B, Hkv, k)`` indices to keep (every K/V head keeps the same number ``k``, so the
cache stays one rectangular tensor). :class:`~attnzoo.kv.state.LayerState` runs a policy after every call of a
layer (prefill compression, then decode-time eviction); :mod:`attnzoo.kv.reference` is the readable oracle.

Budget: ``budget`` tokens per layer and K/V head, or ``keep_ratio`` in ``(0, 1]`` of the first call's length
(the prompt): ``k = max(1, int(n · keep_ratio))``, kvpress' ``compute_n_kept`` with
``compression_ratio = 1 − keep_ratio``. Once set, the budget holds for the rest of the sequence: after each call
the layer holds at most ``budget`` tokens. The attention of a call is always over everything held before it plus
its own tokens (exact), so ``budget >= n`` is full attention for every policy.

Policies:

* :class:`SlidingWindow`: the last ``budget`` tokens.
* :class:`StreamingLLM` (Xiao et al., arXiv 2309.17453): the first ``num_sinks`` tokens (attention sinks) and the
  last ``budget − num_sinks``; kvpress' ``StreamingLLMPress`` (positions kept as cached, no re-rotation).
* :class:`H2O` (Zhang et al., arXiv 2306.14048; paper 57, SinkLoRA, uses it at inference): the most recent
  ``int(budget · recent_fraction)`` tokens plus the heavy hitters, the largest accumulated attention
  ``Σ_queries softmax`` (averaged over the query heads of a K/V group) among the others. ``normalize=True`` divides
  by the number of queries that saw each token: with ``recent_fraction=0`` that is kvpress'
  ``ObservedAttentionPress`` score (tested to keep the same tokens).
* :class:`ZipVL` (He et al., arXiv 2410.08584, reconstructed from the abstract and a review of Eqs. 5-9, no official
  code): per layer the smallest ``p`` whose most-attended tokens carry at least ``tau`` of the layer's attention
  mass (``p`` adapts to the layer; ``tau = 1`` gives ``p = n``), the important set the top-``p`` by *normalised*
  score (accumulated attention / number of queries that can see the token, removing causal attention's bias
  toward early tokens). ``low_bits=None`` evicts the others; ``low_bits=b`` keeps them quantised to ``b`` bits and
  the important ones to ``high_bits`` (``None``: unquantised), ZipVL's mixed-precision cache
  (:mod:`attnzoo.kv.quantization`). As in the paper's decoding, the selection runs on the prompt, then again on
  each ``interval`` (100) tokens decoded since, over those tokens only; older tokens are not revisited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnzoo.validation import check_flag, check_int, check_optional_int, check_real, is_real

__all__ = ["H2O", "KVPolicy", "SlidingWindow", "StreamingLLM", "ZipVL", "adaptive_count", "keep_count"]


def _check_ratio(name: str, value: float | None) -> float | None:
    """``None`` or a real in ``(0, 1]``."""
    if value is None:
        return None
    if not is_real(value) or not 0 < value <= 1 or not math.isfinite(value):
        raise ValueError(f"{name}={value!r}: expected a real number in (0, 1]")
    return float(value)


def keep_count(n: int, keep_ratio: float) -> int:
    """Tokens kept of ``n`` at ``keep_ratio``: ``max(1, int(n · keep_ratio))`` (kvpress' ``compute_n_kept`` with
    ``compression_ratio = 1 − keep_ratio``)."""
    return max(1, int(n * keep_ratio))


def adaptive_count(mass: torch.Tensor, tau: float) -> int:
    """ZipVL's adaptive ratio: ``mass`` ``(B, L)`` the attention each token received (summed over the layer's
    heads); the smallest ``p`` such that the ``p`` most-attended tokens of every batch row carry at least ``tau`` of
    the row's total. Computed from the other end: the tokens dropped are the least attended whose summed mass is at
    most ``(1 − tau)`` of the total, so ``tau = 1`` drops only tokens of exactly zero mass (``p = n`` for softmax)
    and ``p`` is non-decreasing in ``tau``. ``O(B L log L)``."""
    ascending = mass.sort(dim=-1).values.to(torch.float64)
    allowed = (1 - tau) * ascending.sum(dim=-1, keepdim=True)
    dropped = (ascending.cumsum(dim=-1) <= allowed).sum(dim=-1)
    return int((mass.shape[-1] - dropped).max())


@dataclass(frozen=True)
class KVPolicy:
    """The interface: ``budget`` or ``keep_ratio`` (exactly one for the fixed-budget policies), and
    :meth:`select`, the ``(B, Hkv, k)`` indices into the held tokens to keep, ascending."""

    budget: int | None = None
    keep_ratio: float | None = None

    needs_attention = False
    """Whether :meth:`select` reads the attention scores (the layer must then report its probabilities)."""

    def __post_init__(self) -> None:
        check_optional_int("budget", self.budget)
        _check_ratio("keep_ratio", self.keep_ratio)
        if (self.budget is None) == (self.keep_ratio is None):
            raise ValueError(f"{type(self).__name__}(budget={self.budget!r}, keep_ratio={self.keep_ratio!r}): give "
                             "exactly one of budget (tokens per layer and K/V head) or keep_ratio (fraction of the "
                             "prompt kept, in (0, 1])")

    def resolve_budget(self, n: int, mass: torch.Tensor | None) -> int:
        """The budget of a layer whose first call had ``n`` tokens (``mass``: their ``(B, Hkv, n)`` attention)."""
        return self.budget if self.budget is not None else keep_count(n, self.keep_ratio)

    def scores(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """``(B, Hkv, L)`` importance of the held tokens, higher kept first (exact ties are broken by
        ``torch.topk``)."""
        raise NotImplementedError

    def select(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor, budget: int) -> torch.Tensor:
        """Indices ``(B, Hkv, min(budget, L))`` of the held tokens to keep, ascending: the top ``budget`` by
        :meth:`scores`. ``positions`` ``(B, Hkv, L)`` (int64, ascending), ``mass`` the accumulated attention,
        ``seen`` how many queries saw each token."""
        k = min(budget, positions.shape[-1])
        return self.scores(positions, mass, seen).topk(k, dim=-1).indices.sort(dim=-1).values


def _recency(positions: torch.Tensor) -> torch.Tensor:
    """A score that orders tokens by position, in ``[0, 1)`` (later is higher)."""
    return positions.to(torch.float64) / (positions.max().item() + 1)


@dataclass(frozen=True)
class SlidingWindow(KVPolicy):
    """Keep the last ``budget`` tokens."""

    def scores(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        return _recency(positions)


@dataclass(frozen=True)
class StreamingLLM(KVPolicy):
    """Keep the first ``num_sinks`` tokens (StreamingLLM's attention sinks; 4 in the paper and kvpress) and the
    last ``budget − num_sinks``. ``budget`` (or the budget ``keep_ratio`` gives) below ``num_sinks`` is refused."""

    num_sinks: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_sinks", self.num_sinks, 0)
        if self.budget is not None and self.budget < self.num_sinks:
            raise ValueError(f"budget={self.budget} is below num_sinks={self.num_sinks}: the sinks alone exceed the "
                             "budget; expected budget >= num_sinks")

    def resolve_budget(self, n: int, mass: torch.Tensor | None) -> int:
        budget = super().resolve_budget(n, mass)
        if budget < min(self.num_sinks, n):
            raise ValueError(f"keep_ratio={self.keep_ratio} of a {n}-token prompt keeps {budget} tokens, below "
                             f"num_sinks={self.num_sinks}; expected a budget >= num_sinks")
        return budget

    def scores(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        return _recency(positions) + (positions < self.num_sinks).to(torch.float64)


@dataclass(frozen=True)
class H2O(KVPolicy):
    """Heavy hitters plus a recent window: the last ``int(budget · recent_fraction)`` tokens, then the tokens with
    the largest accumulated attention (``normalize=True``: divided by the number of queries that saw them).
    ``recent_fraction`` in ``[0, 1]`` (H2O splits the budget equally: 0.5)."""

    recent_fraction: float = 0.5
    normalize: bool = False

    needs_attention = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("recent_fraction", self.recent_fraction, inclusive=True)
        if self.recent_fraction > 1:
            raise ValueError(f"recent_fraction={self.recent_fraction!r}: expected a real number in [0, 1]")
        check_flag("normalize", self.normalize)

    def scores(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        return mass / seen if self.normalize else mass

    def select(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor, budget: int) -> torch.Tensor:
        length = positions.shape[-1]
        k = min(budget, length)
        recent = min(int(budget * self.recent_fraction), k)
        scores = self.scores(positions, mass, seen).clone()
        scores[..., length - recent:] = math.inf  # held tokens are in position order: the last are the most recent
        return scores.topk(k, dim=-1).indices.sort(dim=-1).values


@dataclass(frozen=True)
class ZipVL(KVPolicy):
    """ZipVL's adaptive important set (see the module docstring): ``tau`` in ``(0, 1]`` (the paper's tables use
    0.96-0.975), ``high_bits`` / ``low_bits`` the widths of the important / other tokens' K and V (``low_bits=None``:
    evict the others; ``high_bits=None``: keep the important ones unquantised). No ``budget`` / ``keep_ratio``:
    ``p`` comes from ``tau``, per layer, for the prompt and then for each ``interval`` tokens decoded."""

    tau: float = 0.975
    high_bits: int | None = None
    low_bits: int | None = None
    interval: int = 100

    needs_attention = True

    def __post_init__(self) -> None:
        if self.budget is not None or self.keep_ratio is not None:
            raise ValueError(f"ZipVL(budget={self.budget!r}, keep_ratio={self.keep_ratio!r}): ZipVL's budget is "
                             "the adaptive p given by tau; pass tau only")
        _check_ratio("tau", self.tau)
        check_int("interval", self.interval)
        from attnzoo.quant.uniform import check_bits

        for name in ("high_bits", "low_bits"):
            if getattr(self, name) is not None:
                check_bits(name, getattr(self, name))
        if self.high_bits is not None and self.low_bits is None:
            raise ValueError(f"high_bits={self.high_bits} with low_bits=None: the other tokens are evicted, so give "
                             "low_bits too for ZipVL's mixed-precision cache (or leave high_bits=None)")
        if self.high_bits is not None and self.low_bits > self.high_bits:
            raise ValueError(f"low_bits={self.low_bits} > high_bits={self.high_bits}: the important tokens get the "
                             "higher precision")

    @property
    def evicts(self) -> bool:
        """Whether the unimportant tokens are evicted (``low_bits=None``) rather than quantised."""
        return self.low_bits is None

    def resolve_budget(self, n: int, mass: torch.Tensor | None) -> int:
        return adaptive_count(mass.sum(dim=1), self.tau)

    def scores(self, positions: torch.Tensor, mass: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        return mass / seen

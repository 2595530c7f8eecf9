"""The local-family benchmark: 2-D and 1-D neighborhood attention, Swin window attention and causal sliding-window
attention.

Workloads (fp32, 4 heads): 2-D neighborhood 7x7 on 32x32, 64x64 and 128x128 grids, head dim 32, batch 1 and
4; 3-D neighborhood 3x3x3 and 5x5x5 on 16x16x16, head dim 32, batch 1; Swin's stage-1 geometry (56x56, 7x7
windows shifted by 3, head dim 32, batch 1 and 4); 1-D neighborhood k=127 and causal sliding window w=256 at 4k
and 16k tokens, head dim 64, batch 1. Implementations: ours (the fused ``native`` kernel, ``tiled`` or
``windowed``, compiled ``flex``), the dense masked SDPA baseline, NATTEN (forward) and local-attention (sliding
window, forward and backward). ``quick`` is a small subset for a first look and the
tests; ``compare`` the batch-1 subset used by ``attnzoo compare``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch

from attnzoo import ops
from attnzoo.bench.case import Case, Inputs, Workload, attention_flops, select_cases
from attnzoo.bench.ours import DEVICE, dense_sdpa_case, flex_block_mask_prepare, registry_case
from attnzoo.bench.peers import local_attention_case, natten_case
from attnzoo.ops.neighborhood.functional import VARIANT_NAMES, neighborhood_pattern
from attnzoo.ops.neighborhood.tiled import neighborhood_plan
from attnzoo.ops.sliding_window.functional import sliding_window_attention
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern
from attnzoo.ops.sliding_window.tiled import sliding_window_plan
from attnzoo.ops.window.functional import VARIANT_NAME as WINDOW_VARIANT
from attnzoo.ops.window.functional import window_attention_2d, window_pattern
from attnzoo.ops.window.pattern import WindowPattern
from attnzoo.ops.window.windowed import window_layout

FAMILY = "local"
REFERENCE_SCORE_LIMIT = 2**28
"""The O(N^2) reference (fp32 scores, softmax and mask) runs for the error column while ``B · H · N^2 <= 2^28``
(1 GiB of scores)."""


def _qkv(shape: tuple[int, ...], device: str = DEVICE) -> Callable[[torch.Generator], Inputs]:
    """Standard normal ``query``, ``key``, ``value`` drawn on CPU from the generator (the same values on every
    device), then moved to ``device``."""
    def make(generator: torch.Generator) -> Inputs:
        return {name: torch.randn(shape, generator=generator).to(device) for name in ("query", "key", "value")}

    return make


def _reference(score_entries: int, fn: Callable[[Inputs], torch.Tensor]) -> dict[str, Any]:
    if score_entries <= REFERENCE_SCORE_LIMIT:
        return {"reference": fn}
    return {"reference_skip": f"reference not run: B*H*N^2 = {score_entries:.2e} > {REFERENCE_SCORE_LIMIT:.2e}"}


def _ours(workload: Workload, pattern: Any, run: Callable[[str], Callable[[Inputs, Any], torch.Tensor]],
          plan: Callable[[], Any], device: str, gathered: str = "tiled") -> list[Case]:
    """The dense masked SDPA baseline, our native kernel, the gathering one (``gathered``: ``tiled``, or
    ``windowed`` for Swin windows; its ``plan`` built as set-up) and the compiled Flex path."""
    return [dense_sdpa_case(workload, pattern, device),
            registry_case(workload, "native", run("native"), device=device),
            registry_case(workload, gathered, run(gathered), prepare=plan, device=device),
            registry_case(workload, "flex", run("flex"), prepare=flex_block_mask_prepare(pattern, device),
                          note="torch.compile(flex_attention), block mask cached", device=device)]


@dataclass(frozen=True)
class NeighborhoodSpec:
    """Neighborhood attention with a ``kernel`` window per axis on ``grid`` (1-D, 2-D or 3-D)."""

    grid: tuple[int, ...]
    kernel: int
    batch: int
    heads: int = 4
    head_dim: int = 32
    device: str = DEVICE

    def workload(self) -> Workload:
        ndim, tokens = len(self.grid), math.prod(self.grid)
        op = self.op()
        entries = self.batch * self.heads * tokens**2
        grid = "x".join(map(str, self.grid))
        window = self.kernel**ndim
        return Workload(
            name=f"na{ndim}d {grid} k{self.kernel} b{self.batch}", family=FAMILY, variant=VARIANT_NAMES[ndim],
            series=f"na{ndim}d k{self.kernel} b{self.batch} h{self.heads} d{self.head_dim}",
            shape={"batch": self.batch, "heads": self.heads, "grid": list(self.grid), "head_dim": self.head_dim,
                   "kernel_size": self.kernel, "window": window},
            tokens=tokens, score_entries=entries,
            flops=attention_flops(self.batch, self.heads, tokens * window, self.head_dim),
            make_inputs=_qkv((self.batch, self.heads, *self.grid, self.head_dim), self.device), device=self.device,
            **_reference(entries, lambda x: op(x["query"], x["key"], x["value"], self.kernel, impl="reference")))

    def op(self) -> Callable[..., torch.Tensor]:
        """``attnzoo.ops.neighborhood_attention_{1,2,3}d``."""
        return getattr(ops, VARIANT_NAMES[len(self.grid)])

    def cases(self) -> list[Case]:
        workload = self.workload()
        pattern = neighborhood_pattern(self.grid, self.kernel, 1, False)
        op = self.op()

        def run(impl: str) -> Callable[[Inputs, Any], torch.Tensor]:
            return lambda x, _: op(x["query"], x["key"], x["value"], self.kernel, impl=impl)

        return [*_ours(workload, pattern, run, lambda: neighborhood_plan(pattern, self.device), self.device),
                natten_case(workload, len(self.grid), self.kernel)]


@dataclass(frozen=True)
class WindowSpec:
    """Swin (shifted) window attention: ``window x window`` windows after a cyclic shift by ``shift``."""

    grid: tuple[int, int]
    window: int
    shift: int
    batch: int
    heads: int = 4
    head_dim: int = 32
    device: str = DEVICE

    def workload(self) -> Workload:
        tokens = math.prod(self.grid)
        entries = self.batch * self.heads * tokens**2
        grid = "x".join(map(str, self.grid))
        pattern = self.pattern()
        # visible (query, key) pairs: per axis the sum of squared group sizes (the region rule), multiplied
        pairs = math.prod(int(torch.bincount((torch.arange(n) + w - s) // w).pow(2).sum())
                          for n, w, s in zip(pattern.shape, pattern.window, pattern.shift))
        return Workload(
            name=f"swin {grid} w{self.window} s{self.shift} b{self.batch}", family=FAMILY,
            variant=WINDOW_VARIANT, series=f"swin w{self.window} s{self.shift} b{self.batch} h{self.heads} "
                                           f"d{self.head_dim}",
            shape={"batch": self.batch, "heads": self.heads, "grid": list(self.grid), "head_dim": self.head_dim,
                   "window_size": self.window, "shift_size": self.shift},
            tokens=tokens, score_entries=entries,
            flops=attention_flops(self.batch, self.heads, pairs, self.head_dim),
            make_inputs=_qkv((self.batch, self.heads, *self.grid, self.head_dim), self.device), device=self.device,
            **_reference(entries, lambda x: self._run("reference")(x, None)))

    def pattern(self) -> WindowPattern:
        return window_pattern(self.grid, self.window, self.shift)

    def _run(self, impl: str) -> Callable[[Inputs, Any], torch.Tensor]:
        return lambda x, _: window_attention_2d(x["query"], x["key"], x["value"], self.window, self.shift, impl=impl)

    def cases(self) -> list[Case]:
        pattern = self.pattern()
        return _ours(self.workload(), pattern, self._run, lambda: window_layout(pattern, self.device), self.device,
                     gathered="windowed")


@dataclass(frozen=True)
class SlidingWindowSpec:
    """Causal sliding-window attention: query ``i`` sees keys ``i - window < j <= i``."""

    length: int
    window: int
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    device: str = DEVICE

    def workload(self, window: int | None = None) -> Workload:
        """The workload; ``window`` overrides the window (for a peer's reference)."""
        window = self.window if window is None else window
        entries = self.batch * self.heads * self.length**2
        pairs = self.length * window - window * (window - 1) // 2
        return Workload(
            name=f"swa {self.length} w{self.window} b{self.batch}", family=FAMILY, variant="sliding_window_attention",
            series=f"swa causal w{self.window} b{self.batch} h{self.heads} d{self.head_dim}",
            shape={"batch": self.batch, "heads": self.heads, "length": self.length, "head_dim": self.head_dim,
                   "window": self.window, "is_causal": True},
            tokens=self.length, score_entries=entries,
            flops=attention_flops(self.batch, self.heads, pairs, self.head_dim),
            make_inputs=_qkv((self.batch, self.heads, self.length, self.head_dim), self.device), device=self.device,
            **_reference(entries, _sliding_window_reference(window)))

    def cases(self) -> list[Case]:
        workload = self.workload()
        pattern = SlidingWindowPattern(self.length, self.window, True, 0)

        def run(impl: str) -> Callable[[Inputs, Any], torch.Tensor]:
            return lambda x, _: sliding_window_attention(x["query"], x["key"], x["value"], self.window, impl=impl)

        peer_reference = self.workload(self.window + 1).reference
        return [*_ours(workload, pattern, run, lambda: sliding_window_plan(pattern, self.device), self.device),
                local_attention_case(workload, self.window, peer_reference)]


def _sliding_window_reference(window: int) -> Callable[[Inputs], torch.Tensor]:
    def reference(x: Inputs) -> torch.Tensor:
        return sliding_window_attention(x["query"], x["key"], x["value"], window, impl="reference")

    return reference


Spec = NeighborhoodSpec | WindowSpec | SlidingWindowSpec

FULL: tuple[Spec, ...] = (
    *(NeighborhoodSpec((side, side), 7, batch) for batch in (1, 4) for side in (32, 64, 128)),
    *(NeighborhoodSpec((16, 16, 16), kernel, 1) for kernel in (3, 5)),
    *(WindowSpec((56, 56), 7, 3, batch) for batch in (1, 4)),
    *(NeighborhoodSpec((length,), 127, 1, head_dim=64) for length in (4096, 16384)),
    *(SlidingWindowSpec(length, 256) for length in (4096, 16384)),
)
SUBSETS: dict[str, tuple[Spec, ...]] = {
    "full": FULL,
    "compare": tuple(spec for spec in FULL if spec.batch == 1),
    "quick": (NeighborhoodSpec((32, 32), 7, 1), WindowSpec((28, 28), 7, 3, 1),
              NeighborhoodSpec((1024,), 31, 1, head_dim=64), SlidingWindowSpec(1024, 64)),
}


def local_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """The cases of ``subset`` (``"full"``, ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only
    those implementations (and the dense baseline)."""
    return select_cases(SUBSETS, subset, impls, device)

"""The sparse-family benchmark: every sparse variant on its registry-wide workload (:mod:`.registry`), except
routing attention, whose workloads are written in :mod:`.routing` (4k and 16k tokens beside causal dense SDPA and
routing-transformer's ``KmeansAttention``), Combiner-Fixed's scaling series (4k, 9k and 16k tokens with segments of
``√N``: the issue's target is forward + backward time growing no faster than ``L^1.6``), then Block Transformer
decoding against a vanilla decoder (:mod:`.block_decode`)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, select_cases
from attnzoo.bench.ours import DENSE_SDPA, DEVICE
from attnzoo.bench.suites.block_decode import BLOCK_DECODE
from attnzoo.bench.suites.registry import benchmark_case
from attnzoo.bench.suites.routing import ROUTING
from attnzoo.ops.routing.functional import VARIANT_NAME as ROUTING_VARIANT
from attnzoo.testing import get_spec

FAMILY = "sparse"
COMBINER = "combiner_fixed_attention"
COMBINER_SCALING = {"full": ((9216, 96), (16384, 128)), "compare": ((16384, 128),), "quick": ()}
"""Combiner-Fixed's extra (tokens, segment) sizes per subset, beside its registry row (4096 tokens, segment 64)."""
REFERENCE_LIMIT = 2**28
"""The dense references of the scaling series are timed up to ``2^28`` score entries."""
WRITTEN_HERE = frozenset({ROUTING_VARIANT})
"""Variants whose workloads this suite writes itself (their registry-wide rows are left out)."""


ATTENTION_INPUTS = frozenset({"query", "key", "value"})
"""A variant whose op takes these gets a dense SDPA row (MHDLSA takes values and per-pixel kernels: none)."""
MEMORY_TARGETS = frozenset({"sparsifiner_attention", "sparse_global_attention"})
"""Variants whose issue target is peak memory against dense attention: they also get a row of dense attention that
stores its N x N probabilities for backward (:func:`dense_materialised_beside`), the papers' ViT baseline; the
flash-style SDPA row keeps O(N) memory on CPU, which no top-k attention can undercut."""
DENSE_MATERIALISED = "dense-materialised"


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, *tokens, D)`` -> ``(B, H, N, D)``."""
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


def _dense_sdpa(inputs: Inputs, causal: bool) -> torch.Tensor:
    return F.scaled_dot_product_attention(*(_tokens(inputs[n]) for n in ("query", "key", "value")), is_causal=causal)


def _float64_sdpa(causal: bool) -> Callable[[Inputs], torch.Tensor]:
    """The dense rows' error reference: SDPA in float64."""
    return lambda inputs: _dense_sdpa({n: inputs[n].double() for n in ("query", "key", "value")}, causal).float()


def dense_sdpa_beside(baseline: Case) -> Case:
    """Dense softmax attention over the same query, key and value tokens as ``baseline``'s registry workload
    (flattened to ``(B, H, N, D)``; causal when the variant's case is), by ``F.scaled_dot_product_attention``: the
    issue's "against dense SDPA in the same run" row beside each sparse variant. A different function, so its error
    is against a float64 SDPA. Its time against the variant's fast path is the sparse-vs-dense ratio; the speed-up
    column stays against the dense reference (the baseline)."""
    causal = _causal(baseline)
    return Case(baseline.workload, DENSE_SDPA, lambda inputs, _: _dense_sdpa(inputs, causal),
                reference=_float64_sdpa(causal),
                note=f"F.scaled_dot_product_attention over the same tokens{' (causal)' if causal else ''}")


def _dense_materialised(inputs: Inputs, causal: bool) -> torch.Tensor:
    query, key, value = (_tokens(inputs[n]) for n in ("query", "key", "value"))
    scores = query @ key.transpose(-2, -1) * query.shape[-1] ** -0.5
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1),
                                    float("-inf"))
    return scores.softmax(dim=-1) @ value


def dense_materialised_beside(baseline: Case) -> Case:
    """Dense softmax attention over ``baseline``'s query, key and value tokens written as ``softmax(Q K^T / sqrt(d))
    V`` with the ``N x N`` scores and probabilities held for backward, as the papers' dense ViT attention does: the
    peak-memory baseline of the issue's "at most a third of dense attention's memory" targets."""
    causal = _causal(baseline)
    note = ("softmax(Q K^T / sqrt(d)) V over the same tokens, N x N probabilities stored for backward"
            f"{' (causal)' if causal else ''}")
    return Case(baseline.workload, DENSE_MATERIALISED, lambda inputs, _: _dense_materialised(inputs, causal),
                reference=_float64_sdpa(causal), note=note)


def _causal(baseline: Case) -> bool:
    spec = get_spec(baseline.workload.variant)
    return bool(spec.options(benchmark_case(spec)).get("is_causal", False))


def _dense_rows(case: Case, with_dense: Collection[str]) -> list[Case]:
    """``case`` and, for a variant's baseline row, the dense rows beside it."""
    variant = case.workload.variant
    if not case.baseline or variant not in with_dense:
        return [case]
    return [case, dense_sdpa_beside(case), *([dense_materialised_beside(case)] if variant in MEMORY_TARGETS else [])]


def sparse_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """The sparse variants' registry-wide workloads (but those in :data:`WRITTEN_HERE`), Combiner-Fixed's scaling
    series, the routing workloads and the Block Transformer's decoding workloads, for ``subset`` (``"full"``,
    ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only those implementations (and the baselines)."""
    from attnzoo.bench.suites.registry import registry_cases, resized_cases

    registry = [case for case in registry_cases(subset, impls, device, FAMILY)
                if case.workload.variant not in WRITTEN_HERE]
    with_dense = {case.workload.variant for case in registry
                  if ATTENTION_INPUTS <= set(get_spec(case.workload.variant).batched_inputs)}
    registry = [row for case in registry for row in _dense_rows(case, with_dense)]
    scaling = [case for tokens, segment in COMBINER_SCALING[subset]
               for case in resized_cases(COMBINER, {"grid": (tokens,), "segment_length": segment}, REFERENCE_LIMIT,
                                         device) if impls is None or case.baseline or case.impl in impls]
    return (registry + scaling + select_cases(ROUTING, subset, impls, device)
            + select_cases(BLOCK_DECODE, subset, impls, device))

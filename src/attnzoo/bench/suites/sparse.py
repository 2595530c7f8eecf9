"""The sparse-family benchmark: every sparse variant on its registry-wide workload (:mod:`.registry`), except
routing attention, whose workloads are written in :mod:`.routing` (4k and 16k tokens beside causal dense SDPA and
routing-transformer's ``KmeansAttention``), Combiner-Fixed's scaling series (4k, 9k and 16k tokens with segments of
``√N``: the issue's target is forward + backward time growing no faster than ``L^1.6``), then Block Transformer
decoding against a vanilla decoder (:mod:`.block_decode`)."""

from __future__ import annotations

from collections.abc import Collection

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


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, *tokens, D)`` -> ``(B, H, N, D)``."""
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


def _dense_sdpa(inputs: Inputs, causal: bool) -> torch.Tensor:
    return F.scaled_dot_product_attention(*(_tokens(inputs[n]) for n in ("query", "key", "value")), is_causal=causal)


def dense_sdpa_beside(baseline: Case) -> Case:
    """Dense softmax attention over the same query, key and value tokens as ``baseline``'s registry workload
    (flattened to ``(B, H, N, D)``; causal when the variant's case is), by ``F.scaled_dot_product_attention``: the
    issue's "against dense SDPA in the same run" row beside each sparse variant. A different function, so its error
    is against a float64 SDPA. Its time against the variant's fast path is the sparse-vs-dense ratio; the speed-up
    column stays against the dense reference (the baseline)."""
    variant = baseline.workload.variant
    spec = get_spec(variant)
    causal = bool(spec.options(benchmark_case(spec)).get("is_causal", False))

    def reference(inputs: Inputs) -> torch.Tensor:
        return _dense_sdpa({n: inputs[n].double() for n in ("query", "key", "value")}, causal).float()

    return Case(baseline.workload, DENSE_SDPA, lambda inputs, _: _dense_sdpa(inputs, causal), reference=reference,
                note=f"F.scaled_dot_product_attention over the same tokens{' (causal)' if causal else ''}")


def sparse_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """The sparse variants' registry-wide workloads (but those in :data:`WRITTEN_HERE`), Combiner-Fixed's scaling
    series, the routing workloads and the Block Transformer's decoding workloads, for ``subset`` (``"full"``,
    ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only those implementations (and the baselines)."""
    from attnzoo.bench.suites.registry import registry_cases, resized_cases

    registry = [case for case in registry_cases(subset, impls, device, FAMILY)
                if case.workload.variant not in WRITTEN_HERE]
    with_dense = {case.workload.variant for case in registry
                  if ATTENTION_INPUTS <= set(get_spec(case.workload.variant).batched_inputs)}
    registry = [row for case in registry
                for row in ([case, dense_sdpa_beside(case)] if case.baseline and case.workload.variant in with_dense
                            else [case])]
    scaling = [case for tokens, segment in COMBINER_SCALING[subset]
               for case in resized_cases(COMBINER, {"grid": (tokens,), "segment_length": segment}, REFERENCE_LIMIT,
                                         device) if impls is None or case.baseline or case.impl in impls]
    return (registry + scaling + select_cases(ROUTING, subset, impls, device)
            + select_cases(BLOCK_DECODE, subset, impls, device))

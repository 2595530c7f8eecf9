"""The sparse-family benchmark: every sparse variant on its registry-wide workload (:mod:`.registry`), except
routing attention, whose workloads are written in :mod:`.routing` (4k and 16k tokens beside causal dense SDPA and
routing-transformer's ``KmeansAttention``), then Block Transformer decoding against a vanilla decoder
(:mod:`.block_decode`)."""

from __future__ import annotations

from collections.abc import Collection

from attnzoo.bench.case import Case, select_cases
from attnzoo.bench.ours import DEVICE
from attnzoo.bench.suites.block_decode import BLOCK_DECODE
from attnzoo.bench.suites.routing import ROUTING
from attnzoo.ops.routing.functional import VARIANT_NAME as ROUTING_VARIANT

FAMILY = "sparse"
WRITTEN_HERE = frozenset({ROUTING_VARIANT})
"""Variants whose workloads this suite writes itself (their registry-wide rows are left out)."""


def sparse_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """The sparse variants' registry-wide workloads (but those in :data:`WRITTEN_HERE`), the routing workloads and
    the Block Transformer's decoding workloads, for ``subset`` (``"full"``, ``"compare"`` or ``"quick"``) on
    ``device``; ``impls`` keeps only those implementations (and the baselines)."""
    from attnzoo.bench.suites.registry import registry_cases

    registry = [case for case in registry_cases(subset, impls, device, FAMILY)
                if case.workload.variant not in WRITTEN_HERE]
    return registry + select_cases(ROUTING, subset, impls, device) + select_cases(BLOCK_DECODE, subset, impls, device)

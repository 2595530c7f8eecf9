"""The sparse benchmark suite: routing attention beside causal dense SDPA and routing-transformer's
``KmeansAttention``, run through the runner on a tiny workload (a second)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnzoo.bench import Settings, run_cases
from attnzoo.bench.ours import DENSE_SDPA
from attnzoo.bench.peers.routing_transformer import IMPL, routing_transformer_unavailable
from attnzoo.bench.suites import SUITES
from attnzoo.bench.suites.routing import REFERENCE_SCORE_LIMIT, RoutingSpec
from attnzoo.bench.suites.sparse import DENSE_MATERIALISED, MEMORY_TARGETS, _dense_materialised, sparse_cases


def test_the_suite_holds_the_routing_workloads_once_and_the_target() -> None:
    assert SUITES["sparse"] is sparse_cases
    cases = sparse_cases("full")
    routing = [case for case in cases if case.workload.variant == "routing_attention"]
    assert {case.workload.name for case in routing} == {"routing 4096 k64 w64 b1", "routing 16384 k128 w128 b1"}
    assert {case.impl for case in routing} == {DENSE_SDPA, "gathered", "reference", IMPL}
    big = {case.impl: case for case in routing if case.workload.tokens == 16384}
    assert big[DENSE_SDPA].baseline and big["gathered"].skip is None
    assert f"{REFERENCE_SCORE_LIMIT:.2e}" in big["reference"].skip
    assert {case.impl for case in sparse_cases("quick", ["gathered"]) if case.workload.variant == "routing_attention"
            } == {DENSE_SDPA, "gathered"}


def test_routing_rows_agree_with_their_references() -> None:
    if routing_transformer_unavailable():
        pytest.skip(routing_transformer_unavailable())
    spec = RoutingSpec(256, 16, 16)
    doc = run_cases(spec.cases(), Settings(min_repeats=1, max_repeats=2, target_s=0.01), progress=False)
    rows = {row["impl"]: row for row in doc["rows"]}
    assert set(rows) == {DENSE_SDPA, "gathered", "reference", IMPL}
    for impl, row in rows.items():
        assert row["status"] == "ok" and row["modes"]["forward_backward"]["status"] == "ok", row
        assert row["max_abs_error"] < (1e-4 if impl == IMPL else 1e-5), (impl, row["max_abs_error"])


def test_memory_target_variants_get_a_materialised_dense_row_that_is_dense_attention() -> None:
    beside = {case.workload.variant for case in sparse_cases("full") if case.impl == DENSE_MATERIALISED}
    assert beside == MEMORY_TARGETS
    generator = torch.Generator().manual_seed(0)
    inputs = {name: torch.randn(1, 2, 3, 5, 8, generator=generator, dtype=torch.float64)
              for name in ("query", "key", "value")}
    for causal in (False, True):
        expected = F.scaled_dot_product_attention(*(inputs[n].flatten(2, 3) for n in ("query", "key", "value")),
                                                  is_causal=causal)
        torch.testing.assert_close(_dense_materialised(inputs, causal), expected, rtol=1e-12, atol=1e-12)

"""Routing attention (arXiv 2003.05997) at 4k and 16k tokens, part of the sparse-family benchmark (:mod:`.sparse`).

Workloads (fp32, batch 1, 4 heads, head dim 64, causal, shared queries and keys, ``√N`` clusters of
``N / √N`` members: 64 of 64 at 4k, 128 of 128 at 16k, the issue's target): ours (``gathered``, and the dense oracle
``reference`` while its ``K · w · N`` scores stay below :data:`REFERENCE_SCORE_LIMIT`), lucidrains'
routing-transformer ``KmeansAttention`` at the same clusters and window, and, as the quadratic baseline, causal
softmax attention by ``F.scaled_dot_product_attention(is_causal=True)`` (a different function: its error column
compares it with a float64 SDPA). Errors of ours and the peer are against the ``gathered`` path in float64 over the
routing of the float32 inputs: routing is discrete, and a float64 routing can put a token near a cluster's
``w``-th place on the other side (an O(1) difference in its output, seen at 4k), which says nothing about the
attention's accuracy. The fast path is itself checked against the oracle in the tests. Inputs: ``query`` (the
keys too), ``value``, unit ``centroids`` ``(H, K, D)``. Useful FLOPs: the visible pairs of the clusters,
``K · (w (w - 1) / 2 + 1)`` per head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload, attention_flops
from attnzoo.bench.ours import DENSE_SDPA, DEVICE, registry_case
from attnzoo.bench.peers.routing_transformer import routing_transformer_case
from attnzoo.ops.routing.functional import VARIANT_NAME, routing_attention
from attnzoo.ops.routing.gathered import routing_gathered
from attnzoo.ops.routing.routing import route

FAMILY = "sparse"
REFERENCE_SCORE_LIMIT = 2**28
"""The routing oracle (each routed query against all ``N`` keys: ``B · H · K · w · N`` scores) is timed while
they number at most ``2^28``; above, its row is skipped with that reason."""


@dataclass(frozen=True)
class RoutingSpec:
    """Causal routing attention with shared queries and keys, ``clusters`` clusters of ``window`` members."""

    length: int
    clusters: int
    window: int
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    device: str = DEVICE

    def make_inputs(self, generator: torch.Generator) -> Inputs:
        b, h, n, d = self.batch, self.heads, self.length, self.head_dim
        inputs = {name: torch.randn(b, h, n, d, generator=generator) for name in ("query", "value")}
        inputs["centroids"] = F.normalize(torch.randn(h, self.clusters, d, generator=generator), dim=-1)
        return {name: t.to(self.device) for name, t in inputs.items()}

    def run(self, inputs: Inputs, impl: str, key: Callable[[torch.Tensor], torch.Tensor] | None = None
            ) -> torch.Tensor:
        q = inputs["query"]
        return routing_attention(q, q if key is None else key(q), inputs["value"], inputs["centroids"], self.window,
                                 is_causal=True, impl=impl, shared_qk=True)

    def reference(self, key: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[Inputs], torch.Tensor]:
        """The ``gathered`` path in float64 over the routing of the float32 inputs (keys ``key(query)``, default the
        queries)."""
        def run(inputs: Inputs) -> torch.Tensor:
            q = inputs["query"]
            k = q if key is None else key(q)
            routing = route(q, k, inputs["centroids"], self.window, True)
            return routing_gathered(q.double(), k.double(), inputs["value"].double(), routing, is_causal=True,
                                    scale=self.head_dim**-0.5).float()

        return run

    def workload(self) -> Workload:
        b, h, n, d, k, w = self.batch, self.heads, self.length, self.head_dim, self.clusters, self.window
        return Workload(
            name=f"routing {n} k{k} w{w} b{b}", family=FAMILY, variant=VARIANT_NAME,
            series=f"routing causal shared-qk sqrt(N) clusters b{b} h{h} d{d}",
            shape={"batch": b, "heads": h, "length": n, "head_dim": d, "clusters": k, "window": w, "is_causal": True,
                   "shared_qk": True, "reference": "float64 gathered, float32 routing"},
            tokens=n, score_entries=b * h * n**2, flops=attention_flops(b, h, k * (w * (w - 1) // 2 + 1), d),
            make_inputs=self.make_inputs, device=self.device, reference=self.reference())

    def cases(self) -> list[Case]:
        workload = self.workload()

        def sdpa(x: Inputs, _: Any) -> torch.Tensor:
            return F.scaled_dot_product_attention(x["query"], x["query"], x["value"], is_causal=True)

        def sdpa_reference(x: Inputs) -> torch.Tensor:
            q, v = x["query"].double(), x["value"].double()
            return F.scaled_dot_product_attention(q, q, v, is_causal=True).float()

        scores = self.batch * self.heads * self.clusters * self.window * self.length
        oracle = registry_case(workload, "reference", lambda x, _: self.run(x, "reference"), device=self.device,
                               note="each routed query against all N keys, explicit cluster mask")
        if scores > REFERENCE_SCORE_LIMIT and oracle.skip is None:
            oracle = Case(workload, "reference", oracle.forward, skip=f"reference not timed: B*H*K*w*N = {scores:.2e} "
                          f"scores > {REFERENCE_SCORE_LIMIT:.2e} (tests check it against gathered)")
        return [Case(workload, DENSE_SDPA, sdpa, baseline=True, reference=sdpa_reference,
                     note="causal softmax attention, F.scaled_dot_product_attention(is_causal=True): the quadratic "
                          "baseline (a different function; error against float64 SDPA)"),
                registry_case(workload, "gathered", lambda x, _: self.run(x, "gathered"), device=self.device,
                              note="members gathered into (B, H*K, w, D) blocks, one SDPA call, scatter-mean back"),
                oracle,
                routing_transformer_case(workload, self.clusters, self.window,
                                         self.reference(lambda q: F.normalize(q, dim=-1)))]


ROUTING: dict[str, tuple[RoutingSpec, ...]] = {
    "full": (RoutingSpec(4096, 64, 64), RoutingSpec(16384, 128, 128)),
    "compare": (RoutingSpec(4096, 64, 64), RoutingSpec(16384, 128, 128)),
    "quick": (RoutingSpec(1024, 32, 32),),
}
"""The routing workloads of each subset."""

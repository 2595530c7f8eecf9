"""The heads-family benchmark: every heads variant on its registry-wide workload (:mod:`.registry`), and one
decoding step of grouped and differential K/V heads (Sigma, arXiv 2501.13629)
after a prefix of 1k and 16k tokens, and the KV cache each configuration holds.

Configurations, all with 16 query heads of dim 64 (fp32, batch 1): MHA (16 K/V heads), GQA (4), MQA (1) and
DiffQKV with 4 K heads and 16 V heads (Sigma-1.5B's shape scaled down: K shared 4x, V not shared). A decoding step
is one query per head against the cached keys and values of the prefix (plus the new token). Ours:
``diffqkv_attention`` by its ``sdpa`` form (the shared heads a stride-0 view, no copy) and its ``grouped`` form;
baseline: SDPA after repeating K and V to every query head (what a cache that stores, or expands, per-query-head
K/V costs). The workload's shape records the cache bytes per token (:func:`kv_cache_bytes_per_token`, per layer
in fp32) and the whole cache at that prefix: the number that decides how long a context fits. Inference only.
Useful FLOPs of a step: ``2·B·Hq·L·(Dk + Dv)``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload, select_cases
from attnzoo.bench.ours import DEVICE, registry_case
from attnzoo.ops.diffqkv.functional import diffqkv_attention
from attnzoo.ops.diffqkv.heads import kv_cache_bytes_per_token

FAMILY = "heads"
VARIANT = "diffqkv_attention"
QUERY_HEADS = 16
HEAD_DIM = 64
CONFIGS = {"MHA": (16, 16), "GQA-4": (4, 4), "MQA": (1, 1), "DiffQKV k4 v16": (4, 16)}
"""Name -> (key heads, value heads), every one with 16 query heads of dim 64."""


@functools.cache
@dataclass(frozen=True)
class DecodeSpec:
    """One decoding step of configuration ``config`` after ``prefix`` tokens."""

    config: str
    prefix: int
    batch: int = 1
    device: str = DEVICE

    def make_inputs(self, generator: torch.Generator) -> Inputs:
        k_heads, v_heads = CONFIGS[self.config]
        length = self.prefix + 1
        shapes = {"query": (self.batch, QUERY_HEADS, 1, HEAD_DIM), "key": (self.batch, k_heads, length, HEAD_DIM),
                  "value": (self.batch, v_heads, length, HEAD_DIM)}
        return {name: torch.randn(shape, generator=generator).to(self.device) for name, shape in shapes.items()}

    def workload(self) -> Workload:
        k_heads, v_heads = CONFIGS[self.config]
        per_token = kv_cache_bytes_per_token(k_heads, HEAD_DIM, v_heads, HEAD_DIM, torch.float32)
        length = self.prefix + 1
        return Workload(
            name=f"decode {self.config} after {self.prefix} b{self.batch}", family=FAMILY, variant=VARIANT,
            series=f"decode {self.config}",
            shape={"batch": self.batch, "query_heads": QUERY_HEADS, "key_heads": k_heads, "value_heads": v_heads,
                   "head_dim": HEAD_DIM, "prefix": self.prefix, "kv_bytes_per_token": per_token,
                   "kv_cache_mb": per_token * length * self.batch / 2**20},
            tokens=self.prefix, score_entries=self.batch * QUERY_HEADS * length,
            flops=2.0 * self.batch * QUERY_HEADS * length * 2 * HEAD_DIM, make_inputs=self.make_inputs,
            device=self.device, reference=lambda x: _step(x, "reference"))

    def cases(self) -> list[Case]:
        workload = self.workload()
        inference = "a decoding step is inference only"

        def repeated(x: Inputs, _: Any) -> torch.Tensor:
            q, k, v = x["query"], x["key"], x["value"]
            return F.scaled_dot_product_attention(q, k.repeat_interleave(QUERY_HEADS // k.shape[1], 1),
                                                  v.repeat_interleave(QUERY_HEADS // v.shape[1], 1))

        ours = [registry_case(workload, impl, lambda x, _, impl=impl: _step(x, impl), device=self.device)
                for impl in ("sdpa", "grouped")]
        baseline = Case(workload, "sdpa, K/V repeated", repeated, baseline=True, backward_skip=inference,
                        note="K and V repeated to every query head, then SDPA")
        return [baseline, *(replace(case, backward_skip=case.backward_skip or inference) for case in ours)]


def _step(inputs: Inputs, impl: str) -> torch.Tensor:
    return diffqkv_attention(inputs["query"], inputs["key"], inputs["value"], impl=impl)


FULL: tuple[DecodeSpec, ...] = tuple(DecodeSpec(config, prefix) for prefix in (1024, 16384) for config in CONFIGS)
SUBSETS: dict[str, tuple[DecodeSpec, ...]] = {
    "full": FULL,
    "compare": FULL,
    "quick": tuple(DecodeSpec(config, 1024) for config in CONFIGS),
}


def heads_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """Every heads variant on its registry-wide workload, then the decoding steps, for ``subset`` (``"full"``,
    ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only those implementations (and the baselines)."""
    from attnzoo.bench.suites.registry import registry_cases

    return registry_cases(subset, impls, device, FAMILY) + select_cases(SUBSETS, subset, impls, device)

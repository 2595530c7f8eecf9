"""The linear-family benchmark: lightning attention (arXiv 2405.17381) for training and for decoding.

Training workloads (fp32, batch 1, 4 heads, head dim 64, lengths 1k / 4k / 16k; fixed TNL slopes of layer 0 of
12, which get no gradient, as in the TransNormerLLM block):
causal decayed linear attention forward and forward + backward by our ``chunked`` form, by fla's pure-PyTorch
``naive_chunk_simple_gla`` (the same function) and, as the quadratic baseline, causal softmax attention by
``F.scaled_dot_product_attention(is_causal=True)`` (a different function: its error column compares it with a
float64 SDPA). Errors of the linear forms are against the float64 dense oracle while ``B·H·N² <= 2^26``, against
the float64 chunked form (itself checked against the oracle in the tests) above that.

Decoding workloads: one new token after a prefix of 1k or 16k tokens. Ours: the ``recurrent`` form from the
prefix's ``D x E`` state (constant work per token); baseline: SDPA of the one query over the prefix's key/value
cache (work grows with the prefix). Inference only, no backward.

Useful FLOPs of the linear forms: ``2·B·H·[N(B+1)/2·(D+E) + 2·N·D·E]`` (visible intra-block pairs, the state
update and the state read-out); of a decoding step ``4·B·H·D·E``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload, select_cases
from attnzoo.bench.ours import DENSE_SDPA, DEVICE, registry_case
from attnzoo.bench.peers.fla_naive import fla_naive_case
from attnzoo.ops.lightning.functional import VARIANT_NAME, lightning_attention, tnl_slopes

FAMILY = "linear"
ORACLE_SCORE_LIMIT = 2**26
"""The float64 dense oracle (scores and decay mask, 8 bytes each) runs while ``B · H · N^2 <= 2^26``."""
BLOCK = 64


@functools.cache
def _slopes(heads: int, device: str = DEVICE) -> torch.Tensor:
    """TransNormerLLM's slopes of layer 0 of 12 (the strongest decay), fp32 on ``device`` (built once: a
    decoding step is short enough for building them to show in its time)."""
    return tnl_slopes(heads, 0, 12).float().to(device)


def _lightning_inputs(batch: int, heads: int, length: int, head_dim: int,
                      device: str = DEVICE) -> Callable[[torch.Generator], Inputs]:
    """``q, k`` scaled by ``D^{-1/4}`` (so ``q·k`` is about N(0, 1)), ``v`` N(0, 1); drawn on CPU from the
    generator, then moved to ``device``."""

    def make(generator: torch.Generator) -> Inputs:
        q, k, v = (torch.randn(batch, heads, length, head_dim, generator=generator).to(device) for _ in range(3))
        scale = head_dim**-0.25
        return {"query": q * scale, "key": k * scale, "value": v}

    return make


def _lightning(inputs: Inputs, impl: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    q, k, v = (inputs[name].to(dtype) for name in ("query", "key", "value"))
    decay = _slopes(q.shape[1], str(q.device)).to(dtype)
    return lightning_attention(q, k, v, decay=decay, block_size=BLOCK, impl=impl).to(inputs["query"].dtype)


def _sdpa_reference(inputs: Inputs) -> torch.Tensor:
    q, k, v = (inputs[name].double() for name in ("query", "key", "value"))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).float()


@dataclass(frozen=True)
class LightningSpec:
    """Training-shaped lightning attention at ``length`` tokens."""

    length: int
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    device: str = DEVICE

    def workload(self) -> Workload:
        b, h, n, d = self.batch, self.heads, self.length, self.head_dim
        entries = b * h * n**2
        oracle = "reference" if entries <= ORACLE_SCORE_LIMIT else "chunked"
        return Workload(
            name=f"lightning {n} b{b}", family=FAMILY, variant=VARIANT_NAME,
            series=f"lightning causal decay b{b} h{h} d{d}",
            shape={"batch": b, "heads": h, "length": n, "head_dim": d, "block_size": BLOCK, "decay": "tnl layer 0/12",
                   "reference": f"float64 {oracle}"},
            tokens=n, score_entries=entries,
            flops=2.0 * b * h * (n * (BLOCK + 1) / 2 * 2 * d + 2 * n * d * d),
            make_inputs=_lightning_inputs(b, h, n, d, self.device), device=self.device,
            reference=lambda x: _lightning(x, oracle, torch.float64))

    def cases(self) -> list[Case]:
        workload = self.workload()

        def sdpa(x: Inputs, _: Any) -> torch.Tensor:
            return F.scaled_dot_product_attention(x["query"], x["key"], x["value"], is_causal=True)

        return [Case(workload, DENSE_SDPA, sdpa, baseline=True, reference=_sdpa_reference,
                     note="causal softmax attention, F.scaled_dot_product_attention(is_causal=True): the quadratic "
                          "baseline (a different function; error against float64 SDPA)"),
                registry_case(workload, "chunked", lambda x, _: _lightning(x, "chunked"),
                              note=f"blocks of {BLOCK}, loop-free carried states, autograd backward",
                              device=self.device),
                fla_naive_case(workload, _slopes(self.heads, self.device), BLOCK)]


@dataclass(frozen=True)
class DecodeSpec:
    """One decoding step after ``prefix`` tokens."""

    prefix: int
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    device: str = DEVICE

    def make_inputs(self, generator: torch.Generator) -> Inputs:
        """The new token, the prefix's lightning state (by the chunked form, untimed) and its key/value cache
        (the new token included) for the softmax baseline."""
        b, h, p, d = self.batch, self.heads, self.prefix, self.head_dim
        full = _lightning_inputs(b, h, p + 1, d, self.device)(generator)
        with torch.no_grad():
            _, state = lightning_attention(*(full[n][:, :, :p] for n in ("query", "key", "value")),
                                           decay=_slopes(h, self.device), output_final_state=True, block_size=BLOCK)
        return {"query": full["query"][:, :, p:], "key": full["key"][:, :, p:], "value": full["value"][:, :, p:],
                "initial_state": state,
                "key_cache": full["key"], "value_cache": full["value"]}

    def workload(self) -> Workload:
        b, h, p, d = self.batch, self.heads, self.prefix, self.head_dim
        return Workload(
            name=f"decode after {p} b{b}", family=FAMILY, variant=VARIANT_NAME,
            series=f"decode one token b{b} h{h} d{d}",
            shape={"batch": b, "heads": h, "prefix": p, "head_dim": d, "decay": "tnl layer 0/12"},
            tokens=p, score_entries=b * h * (p + 1), flops=4.0 * b * h * d * d,
            make_inputs=self.make_inputs, device=self.device, reference=lambda x: _step(x, "reference"))

    def cases(self) -> list[Case]:
        workload = self.workload()
        inference = "a decoding step is inference only"

        def sdpa(x: Inputs, _: Any) -> torch.Tensor:
            return F.scaled_dot_product_attention(x["query"], x["key_cache"], x["value_cache"])

        def sdpa_reference(x: Inputs) -> torch.Tensor:
            q, k, v = (x[name].double() for name in ("query", "key_cache", "value_cache"))
            return F.scaled_dot_product_attention(q, k, v).float()

        recurrent = registry_case(workload, "recurrent", lambda x, _: _step(x, "recurrent"),
                                  note="S = λS + k vᵀ, o = Sᵀq from the prefix's state", device=self.device)
        return [Case(workload, DENSE_SDPA, sdpa, baseline=True, reference=sdpa_reference, backward_skip=inference,
                     note=f"softmax attention of one query over a KV cache of {self.prefix + 1} tokens"),
                replace(recurrent, backward_skip=recurrent.backward_skip or inference)]


def _step(inputs: Inputs, impl: str) -> torch.Tensor:
    q = inputs["query"]
    return lightning_attention(q, inputs["key"], inputs["value"], decay=_slopes(q.shape[1], str(q.device)),
                               initial_state=inputs["initial_state"], impl=impl)


Spec = LightningSpec | DecodeSpec

FULL: tuple[Spec, ...] = (*(LightningSpec(n) for n in (1024, 4096, 16384)), DecodeSpec(1024), DecodeSpec(16384))
SUBSETS: dict[str, tuple[Spec, ...]] = {
    "full": FULL,
    "compare": FULL,
    "quick": (LightningSpec(1024), DecodeSpec(1024)),
}


def linear_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """The cases of ``subset`` (``"full"``, ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only
    those implementations (and the SDPA baseline)."""
    return select_cases(SUBSETS, subset, impls, device)

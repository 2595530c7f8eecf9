"""Decoding with the Block Transformer (arXiv 2406.02657) against a vanilla decoder of about the same parameters,
part of the sparse-family benchmark (:mod:`.sparse`).

Decoding workloads (:class:`BlockDecodeSpec`): a prompt of ``context`` tokens is prefilled into each model's
cache (the set-up column), then a timed call decodes one block's worth of ``L_B`` tokens one at a time through the
model's cached forward (what :func:`attnzoo.models.generation.generate` runs each step; teacher-forced, so both
models read the same tokens) and restores the cache, so every repeat decodes from the same state. Over ``L_B``
steps the Block Transformer runs its token decoder ``L_B`` times (against at most ``S - 1`` cached positions)
and its block decoder once (against ``context / L_B`` cached blocks); the vanilla decoder runs all its layers
every step against ``context`` cached tokens. Models (fp32, byte vocabulary): the Block Transformer with
``dim 256``, 4 heads, 4 block-decoder + 4 token-decoder layers, MLP ratio 4, ``L_B = 4``, ``R = 2`` (the official
main config's), against :func:`~attnzoo.models.block_transformer.vanilla_counterpart` (8 softmax layers of the
same width), both without learned positions (a decoding step does not depend on them, and they would make the
parameter counts depend on the context). The shape records both parameter counts, both caches' bytes at the
context and their ratio (the paper's claim: the KV cache and the decoding cost fall by about ``L_B``; with the
layers split evenly the cache falls by ``2 L_B``). Per-token time = the median / ``L_B``. Inference only; no
useful-FLOP count (two models).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnzoo.bench.case import Case, Inputs, Workload
from attnzoo.bench.ours import DEVICE
from attnzoo.models.block_transformer import BlockTransformer, vanilla_counterpart
from attnzoo.models.generation import ModelCache

FAMILY = "sparse"
VARIANT = "block_local_attention"
VOCAB, DIM, HEADS, LAYERS, BLOCK_LENGTH, PREFIX = 256, 256, 4, 4, 4, 2
"""The decoding models: byte vocabulary, width, heads, layers per decoder (the vanilla model has twice as many),
block length ``L_B`` and prefix vectors ``R``."""


def snapshot(cache: ModelCache) -> Callable[[], None]:
    """A function that puts ``cache`` (and each of its layer caches) back in its present state. The caches never
    write into their tensors (each update makes new ones), so keeping the attributes is enough."""
    saved = [(owner, dict(vars(owner))) for owner in (cache, *cache.layers)]

    def restore() -> None:
        for owner, state in saved:
            vars(owner).clear()
            vars(owner).update(state)

    return restore


@functools.cache
@dataclass(frozen=True)
class BlockDecodeSpec:
    """``L_B`` decoding steps after ``context`` prefilled tokens, ``batch`` sequences."""

    context: int
    batch: int = 1
    device: str = DEVICE

    def block_model(self) -> BlockTransformer:
        torch.manual_seed(0)
        model = BlockTransformer(VOCAB, DIM, BLOCK_LENGTH, LAYERS, LAYERS, HEADS, prefix_length=PREFIX)
        return model.to(self.device).eval()

    def vanilla_model(self) -> nn.Module:
        torch.manual_seed(0)
        return vanilla_counterpart(self.block_model()).to(self.device).eval()

    def make_inputs(self, generator: torch.Generator) -> Inputs:
        return {"tokens": torch.randint(VOCAB, (self.batch, self.context + BLOCK_LENGTH),
                                        generator=generator).to(self.device)}

    def workload(self) -> Workload:
        models = {"block": self.block_model(), "vanilla": self.vanilla_model()}
        params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
        kv = {name: model.new_cache(self.batch).nbytes_at(self.context) for name, model in models.items()}
        return Workload(
            name=f"block transformer decode after {self.context} b{self.batch}", family=FAMILY, variant=VARIANT,
            series=f"block transformer decode b{self.batch}",
            shape={"batch": self.batch, "context": self.context, "dim": DIM, "heads": HEADS,
                   "block_length": BLOCK_LENGTH, "prefix_length": PREFIX, "steps_per_call": BLOCK_LENGTH,
                   "block_params": params["block"], "vanilla_params": params["vanilla"],
                   "block_kv_cache_mb": kv["block"] / 2**20, "vanilla_kv_cache_mb": kv["vanilla"] / 2**20,
                   "kv_cache_ratio": kv["vanilla"] / kv["block"]},
            tokens=self.context, score_entries=self.batch * self.context, flops=0.0, make_inputs=self.make_inputs,
            device=self.device, reference=None,
            reference_skip="two different models: their logits are not comparable")

    def _prepare(self, build: Callable[[], nn.Module]) -> Callable[[], Any]:
        def prepare() -> tuple[nn.Module, ModelCache]:
            model = build()
            prompt = self.make_inputs(torch.Generator().manual_seed(0))["tokens"][:, :self.context]
            cache = model.new_cache(self.batch)
            with torch.no_grad():
                model(prompt, at=torch.zeros_like(prompt, dtype=torch.bool), cache=cache)
            return model, cache

        return prepare

    def _decode(self, inputs: Inputs, prepared: tuple[nn.Module, ModelCache]) -> torch.Tensor:
        model, cache = prepared
        restore = snapshot(cache)
        new = inputs["tokens"][:, self.context:]
        for step in range(BLOCK_LENGTH):
            logits = model(new[:, step:step + 1], cache=cache)
        restore()
        return logits

    def cases(self) -> list[Case]:
        workload = self.workload()
        inference = "decoding is inference only"
        return [Case(workload, "vanilla decoder", self._decode, prepare=self._prepare(self.vanilla_model),
                     baseline=True, backward_skip=inference,
                     note=f"CausalLanguageModel, {2 * LAYERS} softmax layers, KV cache of every token"),
                Case(workload, "block transformer", self._decode, prepare=self._prepare(self.block_model),
                     backward_skip=inference,
                     note=f"{LAYERS} block-decoder + {LAYERS} token-decoder layers, L_B={BLOCK_LENGTH}, R={PREFIX}")]


BLOCK_DECODE: dict[str, tuple[BlockDecodeSpec, ...]] = {
    "full": (*(BlockDecodeSpec(context) for context in (1024, 4096, 16384)),
             *(BlockDecodeSpec(context, 8) for context in (1024, 4096))),
    "compare": (BlockDecodeSpec(1024), BlockDecodeSpec(16384), BlockDecodeSpec(4096, 8)),
    "quick": (BlockDecodeSpec(256), BlockDecodeSpec(256, 4)),
}
"""The decoding workloads of each subset."""

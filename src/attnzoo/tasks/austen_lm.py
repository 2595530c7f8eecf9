"""Byte-level language modelling on Jane Austen's novels: ``attnzoo eval austen --mixers a,b,c``.

Data: the six novels of Debian's ``r-cran-janeaustenr`` (:func:`attnzoo.data.austen_splits`), one held out
(Persuasion by default, 467k bytes); the model reads UTF-8 bytes (vocabulary 256, so no tokenizer and bits
per byte need no conversion). Training batches are ``batch_size`` windows of ``seq_len + 1`` bytes at random
offsets of the training novels. Validation cuts the held-out novel (its first ``val_bytes``, or all of it if
``val_bytes = 0``) into consecutive non-overlapping windows of ``seq_len + 1`` bytes and scores every next-byte
prediction in them, each window starting from an empty context (so early positions of a window see little
context; the number is comparable across mixers, not with sliding-context evaluations).

Reported: ``val_bits_per_byte`` = mean next-byte cross-entropy / ln 2, and ``val_perplexity`` (per byte).

Model: :class:`~attnzoo.models.CausalLanguageModel` with an MLP (ratio 4), learned positions, tied head.
Per-mixer defaults (:meth:`AustenLMTask.mixer_options`) keep the parameter count equal across the three
mixers of the issue: ``softmax`` (full causal attention), ``sliding_window_attention`` (``window``) and
``neighborhood_attention_1d`` (causal, ``kernel_size = window``, no relative position bias), each with
``num_heads`` heads and the same q/k/v/output projections. In 1-D, causal neighbourhood attention with kernel
``k`` (NATTEN's semantics: keys ``[i - k + 1, i]``) is the causal sliding window of ``k`` keys, so those two
rows measure one mechanism through two implementations and must agree closely — a cross-check, not a
comparison. ``window`` must be odd (NATTEN's kernels are). ``block_transformer`` (an architecture of
:mod:`attnzoo.models.architectures`) trains the Block Transformer instead: half the blocks in its block decoder,
half in its token decoder, ``num_heads`` heads, the same width, MLP and positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.architectures import Sizes, build_language_model, check_language_models
from attnzoo.models.language_model import SOFTMAX
from attnzoo.models.mixers import option_if_taken
from attnzoo.tasks.harness import evaluating, require_at_least, require_available
from attnzoo.train import TrainConfig

DEFAULT_MIXERS = ("softmax", "sliding_window_attention", "neighborhood_attention_1d")
BYTE_VOCAB = 256


def bits_per_byte(model: nn.Module, data: torch.Tensor, seq_len: int, batch_size: int = 32) -> float:
    """Mean next-byte cross-entropy in bits of ``model`` over ``data`` (uint8 ``(T,)``), cut into consecutive
    windows of ``seq_len + 1`` bytes (a shorter tail is dropped); each window starts from an empty context."""
    windows = len(data) // (seq_len + 1)
    if windows == 0:
        raise ValueError(f"data has {len(data)} bytes; scoring needs at least seq_len + 1 = {seq_len + 1}")
    chunks = data[:windows * (seq_len + 1)].long().view(windows, seq_len + 1)
    total = 0.0
    with evaluating(model) as device:
        for start in range(0, windows, batch_size):
            chunk = chunks[start:start + batch_size].to(device)
            logits = model(chunk[:, :-1])
            total += float(F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"))
    return total / (windows * seq_len) / math.log(2)


@dataclass
class AustenLMTask:
    """Byte-level causal language modelling on the Austen novels (see the module docstring)."""

    seq_len: int = 256
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    window: int = 65
    batch_size: int = 16
    held_out: str = "Persuasion"
    val_bytes: int = 131_072
    _data: tuple[torch.Tensor, ...] = field(default=(), init=False, repr=False, compare=False)

    name = "austen"
    title = "Language modelling on Jane Austen's novels (bytes)"
    metric = "val_bits_per_byte"
    higher_is_better = False
    item_name = "bytes"
    default_mixers = DEFAULT_MIXERS
    default_steps = 1000
    default_lr = 0.002

    def __post_init__(self) -> None:
        require_at_least(self, seq_len=1, batch_size=1, val_bytes=0)

    @property
    def items_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        check_language_models(options, self._sizes())

    def _sizes(self) -> Sizes:
        return Sizes(BYTE_VOCAB, self.d_model, self.num_layers, 4.0, self.seq_len)

    def prepare(self) -> None:
        if not self._data:
            from attnzoo.data import austen_splits

            train_bytes, val_bytes = austen_splits(self.held_out)
            require_available(self, "val_bytes", len(val_bytes), f"bytes of {self.held_out} (0 takes them all)")
            self._data = (train_bytes, val_bytes[:self.val_bytes] if self.val_bytes else val_bytes)

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        local = {"num_heads": self.num_heads}
        return {**option_if_taken(mixer, "is_causal", True), **{
            SOFTMAX: local,
            "sliding_window_attention": {**local, "window": self.window},
            "neighborhood_attention_1d": {**local, "kernel_size": self.window, "rel_pos_bias": False},
            "block_transformer": local,
        }.get(mixer, {})}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        return build_language_model(mixer, self._sizes(), mixer_kwargs, seq_len=self.seq_len)

    def batch(self, generator: torch.Generator) -> torch.Tensor:
        train_bytes = self._data[0]
        starts = torch.randint(len(train_bytes) - self.seq_len - 1, (self.batch_size,), generator=generator)
        return train_bytes[starts[:, None] + torch.arange(self.seq_len + 1)].long()

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())

    def score(self, model: nn.Module) -> dict[str, float]:
        bpb = bits_per_byte(model, self._data[1], self.seq_len)
        return {"val_bits_per_byte": bpb, "val_perplexity": 2.0 ** bpb}

    def settings_markdown(self, train_config: TrainConfig) -> str:
        val = f"its first {self.val_bytes:,} bytes" if self.val_bytes else "all of it"
        return (f"- data: UTF-8 bytes of the Austen novels (Debian r-cran-janeaustenr); {self.held_out} held out, "
                f"validation on {val} in non-overlapping windows of {self.seq_len} predictions\n"
                f"- model: d_model {self.d_model}, {self.num_layers} blocks with MLP (ratio 4), {self.num_heads} "
                f"heads, learned positions, tied head; window / kernel {self.window} for the local mixers\n"
                f"- training: {train_config.steps} steps of {self.batch_size} random windows of {self.seq_len} "
                f"bytes, AdamW lr {train_config.lr}, warm-up {train_config.warmup_steps}, weight decay "
                f"{train_config.weight_decay}, seed {train_config.seed}")

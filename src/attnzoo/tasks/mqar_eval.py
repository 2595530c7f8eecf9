"""MQAR as a quality task: ``attnzoo eval mqar --mixers a,b,c`` (Zoology, Arora et al. 2023, arXiv 2312.04927).

:class:`MQARTask` builds a zoology-like :class:`~attnzoo.models.CausalLanguageModel` per mixer (``d_model``
wide, 2 blocks, no MLP as in Zoology's Figure 2, head tied to the embedding), trains it on the MQAR training
split (cross-entropy at the query positions only; the model computes logits there alone) and scores the
query accuracy on the test split. :func:`~attnzoo.tasks.harness.evaluate_mixers` runs it for each mixer.

**CPU budget.** Zoology's Figure 2 trains a pure two-layer attention stack for 64 epochs of 100k examples
(about 25k steps of batch 256 at length 256). On two CPU cores that is out of reach, and a pure stack needs
thousands of steps before its previous-token head forms (measured: 4% test accuracy at (256, 16) after 800
steps of batch 64, vocab 8192). ``short_conv=3`` (the default) makes block 0 zoology's short gated
convolution, the stem of zoology's Based/Hybrid configurations, and block 1 the mixer under test: the
convolution binds each value to its key, the mixer does the recall, and softmax attention then reaches 99.9%
at (256, 16) in 800 steps. ``short_conv=0`` gives the pure Figure 2 stacks.

Per-mixer defaults (:meth:`MQARTask.mixer_options`; ``mixer_kwargs`` overrides them):

* ``softmax``: ``num_heads=1`` (zoology's MHA default), learned positions.
* ``sliding_window_attention``: ``num_heads=1``, ``window = seq_len // 4 + 1`` (odd), learned positions.
* ``neighborhood_attention_1d``: ``num_heads=1``, causal, ``kernel_size = seq_len // 4 + 1``, no relative position
  bias (the same parameters as softmax), learned positions.
* ``base_conv``: ``l_max = seq_len`` (zoology's explicit long convolution) and no positional embedding.
* any other causal ``(B, N, C)`` registry variant: its registry defaults with the sizes filled from
  ``seq_len``, learned positions.
* ``block_transformer`` (an architecture of :mod:`attnzoo.models.architectures`, not a mixer): the Block
  Transformer with one block-decoder and one token-decoder layer of ``d_model``, ``num_heads=1``, no MLP,
  learned positions, no short convolution.

Every mixer whose layer has an ``is_causal`` switch gets ``is_causal=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.architectures import Sizes, build_language_model, check_language_models
from attnzoo.models.language_model import SOFTMAX
from attnzoo.models.mixers import option_if_taken
from attnzoo.tasks.harness import evaluating, require_at_least
from attnzoo.tasks.mqar import IGNORE_INDEX, MQARConfig
from attnzoo.train import TrainConfig

DEFAULT_MIXERS = ("softmax", "sliding_window_attention", "lightning_attention", "base_conv")

UNPOSITIONED = ("base_conv",)
"""Mixers whose models get no positional embedding (zoology's convolutional runs use none)."""


def split_accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """:func:`~attnzoo.tasks.query_accuracy` over a whole split, in chunks, logits at the query positions only."""
    correct = total = 0
    with evaluating(model) as device:
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            mask = y != IGNORE_INDEX
            correct += int((model(x, at=mask).argmax(-1) == y[mask]).sum())
            total += int(mask.sum())
    if total == 0:
        raise ValueError("labels contain no query positions")
    return correct / total


@dataclass
class MQARTask:
    """Multi-query associative recall at one ``(seq_len, num_kv_pairs)`` setting (see the module docstring)."""

    seq_len: int = 64
    num_kv_pairs: int = 4
    vocab_size: int = 8192
    train_examples: int = 20_000
    test_examples: int = 1_000
    d_model: int = 64
    num_layers: int = 2
    short_conv: int = 3
    batch_size: int = 64
    data_seed: int = 0
    _data: tuple[torch.Tensor, ...] = field(default=(), init=False, repr=False, compare=False)

    name = "mqar"
    title = "MQAR: multi-query associative recall"
    metric = "test_accuracy"
    higher_is_better = True
    item_name = "tokens"
    default_mixers = DEFAULT_MIXERS
    default_steps = 800
    default_lr = 0.003

    def __post_init__(self) -> None:
        require_at_least(self, batch_size=1, train_examples=1, test_examples=1)

    @property
    def config(self) -> MQARConfig:
        """The data setting."""
        return MQARConfig(vocab_size=self.vocab_size, seq_len=self.seq_len, num_kv_pairs=self.num_kv_pairs,
                          num_train_examples=self.train_examples, num_test_examples=self.test_examples,
                          seed=self.data_seed)

    @property
    def items_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        check_language_models(options, self._sizes(SOFTMAX))

    def _sizes(self, mixer: str) -> Sizes:
        return Sizes(self.vocab_size, self.d_model, self.num_layers, 0.0,
                     0 if mixer in UNPOSITIONED else self.seq_len)

    def prepare(self) -> None:
        if not self._data:
            self._data = self.config.splits()

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        window = max(1, self.seq_len // 4) | 1  # odd: neighborhood kernels must be
        return {**option_if_taken(mixer, "is_causal", True), **{
            SOFTMAX: {"num_heads": 1},
            "sliding_window_attention": {"num_heads": 1, "window": window},
            "neighborhood_attention_1d": {"num_heads": 1, "kernel_size": window, "rel_pos_bias": False},
            "block_transformer": {"num_heads": 1},
        }.get(mixer, {})}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        return build_language_model(mixer, self._sizes(mixer), mixer_kwargs, short_conv=self.short_conv,
                                    seq_len=self.seq_len)

    def batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        train_inputs, train_labels = self._data[:2]
        idx = torch.randint(len(train_inputs), (self.batch_size,), generator=generator)
        return train_inputs[idx], train_labels[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        queries = labels != IGNORE_INDEX
        return F.cross_entropy(model(inputs, at=queries), labels[queries])

    def score(self, model: nn.Module) -> dict[str, float]:
        return {"test_accuracy": split_accuracy(model, *self._data[2:])}

    def settings_markdown(self, train_config: TrainConfig) -> str:
        stem = (f"block 0 a short gated convolution (BaseConv, {self.short_conv} taps), then the mixer"
                if self.short_conv else "every block the mixer")
        return (f"- data: (seq_len {self.seq_len}, {self.num_kv_pairs} kv pairs), vocab {self.vocab_size}, "
                f"{self.train_examples} train / {self.test_examples} test examples, power_a 0.01, "
                f"seed {self.data_seed}\n"
                f"- model: d_model {self.d_model}, {self.num_layers} blocks ({stem}), no MLP, tied head; "
                "per-mixer options in the JSON\n"
                f"- training: {train_config.steps} steps of batch {self.batch_size}, AdamW lr {train_config.lr}, "
                f"warm-up {train_config.warmup_steps}, weight decay {train_config.weight_decay}, "
                f"seed {train_config.seed}\n"
                f"- test accuracy: argmax at the query positions of the test split (chance ≈ "
                f"{2 / self.vocab_size:.2g})")

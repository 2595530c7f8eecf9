"""Sorting numbers with a Pointer Network (Vinyals et al. 2015, arXiv 1506.03134):
``attnzoo eval sorting --mixers pointer_attention``.

The paper names sorting as a problem of its class (outputs that are positions of the input) but its experiments
are convex hulls, Delaunay triangulations and the TSP (abstract, Sec. 4); it reports no sorting accuracy to
compare with. Sorting is the simplest task of the class and needs no oracle beyond ``argsort``.

Data (generated, seeded): sequences of ``length`` numbers drawn uniformly from ``[0, 1)``; the target is their
argsort (the input positions in increasing order of value), so the output "vocabulary" is the input positions.
Training draws a fresh batch from the engine's generator at every step (an unlimited stream, as the paper's
1M generated examples); the test set is ``test_examples`` sequences from ``data_seed``. The model is
:class:`attnzoo.models.pointer_network.PointerNetwork` (LSTM encoder and decoder, pointer attention), trained with
the shared engine (:func:`attnzoo.train.train`: AdamW with warm-up and cosine decay, gradient clipping) on the
teacher-forced cross-entropy of every pointer step, not the paper's SGD at lr 1.0. Scores (greedy decoding, no
beam search): ``exact_match`` (the whole sequence right), ``position_accuracy`` (steps right), each also with
``mask_chosen`` at inference (``_masked``: an input already pointed to may not be pointed to again).

The "mixer" of this task is the pointer head the network scores its outputs with: the registered variants whose
op maps decoder and encoder states to a distribution over the encoder positions (:data:`POINTER_HEADS`), not the
token mixers of the other tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.pointer_network import PointerNetwork
from attnzoo.tasks.harness import evaluating, require_at_least
from attnzoo.train import TrainConfig

POINTER_HEADS = ("pointer_attention",)
"""Registered variants that can be a Pointer Network's head (decoder, encoder -> distribution over positions)."""
HEAD_OPTIONS = ("attn_dim", "impl")
"""The head options a mixer's kwargs may set (:class:`~attnzoo.layers.pointer.PointerAttention`)."""


def sorting_data(count: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sequences ``(count, length, 1)`` of uniform ``[0, 1)`` floats and their argsort ``(count,
    length)`` (positions in increasing order of value; ties have probability 0)."""
    values = torch.rand(count, length, generator=generator)
    return values[..., None], values.argsort(dim=-1)


def sorting_accuracy(pointers: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """``exact_match`` (fraction of sequences with every pointer right) and ``position_accuracy`` (fraction of
    pointers right) of ``(B, n)`` pointers against ``(B, n)`` targets."""
    if pointers.shape != targets.shape:
        raise ValueError(f"pointers have shape {tuple(pointers.shape)}; expected the targets' {tuple(targets.shape)}")
    right = pointers == targets
    return {"exact_match": float(right.all(-1).double().mean()), "position_accuracy": float(right.double().mean())}


def pointer_loss(model: PointerNetwork, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean teacher-forced cross-entropy of every pointer step."""
    logits = model(inputs, targets)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@dataclass
class SortingTask:
    """Sort ``length`` uniform numbers with a Pointer Network of ``hidden`` LSTM units (see the module)."""

    length: int = 5
    hidden: int = 128
    batch_size: int = 128
    test_examples: int = 2000
    mask_chosen: bool = False
    data_seed: int = 0
    _test: tuple[torch.Tensor, ...] = field(default=(), init=False, repr=False, compare=False)

    name = "sorting"
    title = "Sorting numbers with a Pointer Network (arXiv 1506.03134)"
    metric = "exact_match"
    higher_is_better = True
    item_name = "sequences"
    default_mixers = POINTER_HEADS
    default_steps = 2000
    default_lr = 0.003

    def __post_init__(self) -> None:
        require_at_least(self, length=2, hidden=1, batch_size=1, test_examples=1)
        if not isinstance(self.mask_chosen, bool):
            raise ValueError(f"SortingTask mask_chosen={self.mask_chosen!r}: expected a bool")

    @property
    def items_per_batch(self) -> int:
        return self.batch_size

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        problems = []
        for mixer, kwargs in options.items():
            if mixer not in POINTER_HEADS:
                problems.append(f"mixer {mixer!r} is not a pointer head (the sorting task scores pointer heads: "
                                f"{', '.join(POINTER_HEADS)}; token mixers belong to the other tasks)")
            unknown = sorted(set(kwargs) - set(HEAD_OPTIONS))
            if unknown:
                problems.append(f"mixer {mixer!r}: unknown options {unknown}; expected some of {list(HEAD_OPTIONS)}")
        if problems:
            raise ValueError("; ".join(problems))

    def prepare(self) -> None:
        if not self._test:
            self._test = sorting_data(self.test_examples, self.length, torch.Generator().manual_seed(self.data_seed))

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        return {"attn_dim": self.hidden}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        return PointerNetwork(self.hidden, input_dim=1, mask_chosen=self.mask_chosen, **mixer_kwargs)

    def batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return sorting_data(self.batch_size, self.length, generator)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return pointer_loss(model, *batch)

    def score(self, model: nn.Module) -> dict[str, float]:
        self.prepare()
        inputs, targets = self._test
        with evaluating(model) as device:
            free = sorting_accuracy(model.decode(inputs.to(device), mask_chosen=False)[0].cpu(), targets)
            masked = sorting_accuracy(model.decode(inputs.to(device), mask_chosen=True)[0].cpu(), targets)
        return {**free, **{f"{key}_masked": value for key, value in masked.items()}}

    def settings_markdown(self, train_config: TrainConfig) -> str:
        return (f"- data: sequences of {self.length} uniform [0, 1) numbers, target their argsort; a fresh "
                f"batch of {self.batch_size} per step, {self.test_examples} test sequences (seed {self.data_seed})\n"
                f"- model: Pointer Network, single-layer LSTM encoder and decoder of {self.hidden} units, pointer "
                f"attention (options in the JSON), U(-0.08, 0.08) init"
                f"{', already pointed inputs masked in training' if self.mask_chosen else ''}\n"
                f"- training: {train_config.steps} steps, AdamW lr {train_config.lr}, warm-up "
                f"{train_config.warmup_steps}, weight decay {train_config.weight_decay}, clip "
                f"{train_config.grad_clip}, seed {train_config.seed}; teacher-forced cross-entropy\n"
                "- scores: greedy decoding on the test set; exact_match = whole sequence right, position_accuracy "
                "= pointers right; _masked: with already pointed inputs masked at inference")

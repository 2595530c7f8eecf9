"""Fashion-MNIST classification as quality tasks: ``attnzoo eval fashion-mnist`` and ``attnzoo eval pixel-mnist``.

Data: Fashion-MNIST (Xiao et al. 2017) from Debian's ``dataset-fashion-mnist`` (:func:`attnzoo.data.
load_fashion_mnist`): 60k training and 10k test 28x28 grey images of 10 balanced classes. Pixels are scaled to
[0, 1] and standardised with the training set's mean and standard deviation. Training batches are drawn with
replacement by the seeded generator; with ``flip`` each image is mirrored left-right with probability 1/2 (a
label-preserving augmentation for clothing). Scored: ``test_accuracy`` over the first ``test_examples`` test
images (the whole split for the ViT, 2k for the slower 784-token sequences).

* :class:`FashionMNISTTask` — a small :class:`~attnzoo.models.VisionTransformer` (patch 4 -> 7x7 tokens by
  default) whose token mixer is any spatial ``(B, H, W, C)`` registry mixer, any ``(B, N, C)`` mixer (on the
  flattened grid) or ``"softmax"`` (full attention).
* :class:`PixelMNISTTask` — the same images as sequences of 784 pixels (row-major) for a
  :class:`~attnzoo.models.SequenceClassifier` with a ``(B, N, C)`` mixer: the long-sequence task of the
  efficient-attention literature (sequential MNIST), mean-pooled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.mixers import GRID_LAYOUT, SEQUENCE_LAYOUT, check_mixers, fit_options, option_if_taken
from attnzoo.tasks.harness import evaluating, require_at_least, require_available
from attnzoo.train import TrainConfig

NUM_CLASSES = 10
IMAGE_SIZE = 28


def split_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` over ``images`` (a float batch it takes) and ``labels``, in chunks."""
    correct = 0
    with evaluating(model) as device:
        for start in range(0, len(images), batch_size):
            logits = model(images[start:start + batch_size].to(device))
            correct += int((logits.argmax(-1).cpu() == labels[start:start + batch_size]).sum())
    return correct / len(images)


@dataclass
class ImageClassificationData:
    """Fashion-MNIST loading, batches, loss and scoring shared by the two tasks."""

    batch_size: int = 128
    flip: bool = True
    test_examples: int = 10_000
    _data: tuple[torch.Tensor, ...] = field(default=(), init=False, repr=False, compare=False)

    item_name = "images"
    metric = "test_accuracy"
    higher_is_better = True

    def __post_init__(self) -> None:
        require_at_least(self, batch_size=1, test_examples=1)

    @property
    def items_per_batch(self) -> int:
        return self.batch_size

    def prepare(self) -> None:
        if self._data:
            return
        from attnzoo.data import load_fashion_mnist

        train_images, train_labels = load_fashion_mnist("train")
        test_images, test_labels = load_fashion_mnist("test")
        require_available(self, "test_examples", len(test_images), "Fashion-MNIST test images")
        scaled = train_images.float() / 255
        mean, std = scaled.mean(), scaled.std()
        self._data = ((scaled - mean) / std, train_labels, (test_images.float() / 255 - mean) / std, test_labels)

    def batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self._data[:2]
        idx = torch.randint(len(images), (self.batch_size,), generator=generator)
        batch = images[idx]
        if self.flip:
            mirrored = torch.rand(self.batch_size, generator=generator) < 0.5
            batch = torch.where(mirrored[:, None, None], batch.flip(-1), batch)
        return batch, labels[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def score(self, model: nn.Module) -> dict[str, float]:
        """Accuracy on the first ``test_examples`` test images (all 10k by default)."""
        return {"test_accuracy": split_accuracy(model, *(t[:self.test_examples] for t in self._data[2:]))}

    def _training_line(self, train_config: TrainConfig) -> str:
        flip = ", random left-right flips" if self.flip else ""
        return (f"- training: {train_config.steps} steps of batch {self.batch_size} "
                f"(≈ {train_config.steps * self.batch_size / 60_000:.1f} epochs of 60k{flip}), AdamW lr "
                f"{train_config.lr}, warm-up {train_config.warmup_steps}, weight decay {train_config.weight_decay}, "
                f"seed {train_config.seed}\n- test accuracy: top-1 over the first {self.test_examples:,} test images")


@dataclass
class FashionMNISTTask(ImageClassificationData):
    """A small ViT on Fashion-MNIST with the mixer under test (see the module docstring)."""

    patch_size: int = 4
    dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0

    name = "fashion-mnist"
    default_mixers = ("softmax", "neighborhood_attention_2d")
    default_steps = 4000
    default_lr = 2e-3
    title = "Fashion-MNIST: a small vision transformer per spatial mixer"

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return IMAGE_SIZE // self.patch_size

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        check_mixers(options, self.dim, (SEQUENCE_LAYOUT, GRID_LAYOUT), causal=False)

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        """Every mixer with heads gets ``num_heads``, every one with the option ``is_causal=False`` (the classifier
        sees the whole image, as the pixel task's); local mixers a neighbourhood / window / block of about 5/7 of
        the grid side (5 at 7x7; ``Variant.fit_options``), so they are local but see across patches."""
        side = self.grid
        return {**option_if_taken(mixer, "num_heads", self.num_heads), **option_if_taken(mixer, "is_causal", False),
                **fit_options(mixer, (side, side), max(1, (5 * side) // 7))}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        from attnzoo.models import VisionTransformer

        return VisionTransformer(IMAGE_SIZE, self.patch_size, 1, NUM_CLASSES, self.dim, self.depth, mixer,
                                 mixer_kwargs, self.mlp_ratio)

    def settings_markdown(self, train_config: TrainConfig) -> str:
        return (f"- model: ViT, patch {self.patch_size} ({self.grid}x{self.grid} tokens), width {self.dim}, depth "
                f"{self.depth}, {self.num_heads} heads, MLP ratio {self.mlp_ratio}, learned positions, mean pool; "
                "per-mixer options in the JSON\n" + self._training_line(train_config))


@dataclass
class PixelMNISTTask(ImageClassificationData):
    """Fashion-MNIST as 784-pixel sequences for sequence mixers (see the module docstring)."""

    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    batch_size: int = 32
    flip: bool = False
    test_examples: int = 2_000  # all 10k at length 784 cost minutes per mixer

    name = "pixel-mnist"
    default_mixers = ("softmax", "sliding_window_attention", "lightning_attention")
    default_steps = 300
    default_lr = 2e-3
    title = "Fashion-MNIST pixel by pixel (sequences of 784)"

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        check_mixers(options, self.dim, (SEQUENCE_LAYOUT,), causal=False)

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        """``num_heads`` for every mixer with heads, ``is_causal=False`` for those with the option (the classifier
        sees the whole image), and windows / groups of about one image row (28 pixels; ``Variant.fit_options``)
        for the local ones."""
        return {**option_if_taken(mixer, "num_heads", self.num_heads), **option_if_taken(mixer, "is_causal", False),
                **fit_options(mixer, (IMAGE_SIZE * IMAGE_SIZE,), IMAGE_SIZE)}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        from attnzoo.models import SequenceClassifier

        return _Flatten(SequenceClassifier(IMAGE_SIZE * IMAGE_SIZE, NUM_CLASSES, self.dim, self.depth, mixer,
                                           mixer_kwargs, mlp_ratio=self.mlp_ratio))

    def settings_markdown(self, train_config: TrainConfig) -> str:
        return (f"- model: sequence classifier over 784 pixels, width {self.dim}, depth {self.depth}, "
                f"{self.num_heads} heads, MLP ratio {self.mlp_ratio}, learned positions, mean pool; per-mixer "
                "options in the JSON\n" + self._training_line(train_config))


class _Flatten(nn.Module):
    """``(B, 28, 28)`` images -> the wrapped model on ``(B, 784)`` row-major pixel sequences."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.flatten(1))

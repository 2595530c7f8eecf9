"""The papers' vision backbones on Fashion-MNIST: ``attnzoo eval fashion-mnist --models a,b,c``.

Every model of the model registry (:func:`attnzoo.list_models`) named is built by
:func:`attnzoo.create_model` for 1-channel 28x28 images and 10 classes, trained by the shared harness
(:func:`~attnzoo.tasks.harness.evaluate_mixers`: the same steps, batch, learning-rate schedule, seed and flips
as the ViT task, checkpoints under ``out/runs/fashion-mnist-models/<model>/``, exact ``--resume``) and scored:

* ``test_accuracy``: top-1 over the first ``test_examples`` test images;
* ``mflops``: forward FLOPs per image in millions, counted by ``torch.utils.flop_counter.FlopCounterMode``
  on one eval-mode image (it counts the matrix products, convolutions and attention kernels PyTorch dispatches;
  element-wise operations, norms and softmax are not counted);
* ``infer_images_per_s``: images per second of the scoring pass (eval mode, no gradients, batches of 500);
* with the harness's ``train_images_per_s``: images per second of the training run.

The JSON (``fashion-mnist-models.json``) and markdown table (``fashion-mnist-models.md``) are the harness's; the
rows' ``mixer`` key holds the model name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attnzoo.tasks.fashion_mnist import IMAGE_SIZE, NUM_CLASSES, ImageClassificationData, split_accuracy
from attnzoo.tasks.harness import evaluating
from attnzoo.train import TrainConfig

FIXED = {"in_channels": 1, "num_classes": NUM_CLASSES, "image_size": IMAGE_SIZE}
"""What the task fixes of every model; a model option may not override it."""


def forward_flops(model: nn.Module, images: torch.Tensor) -> int:
    """The forward FLOPs of ``model`` on ``images`` (eval mode, no gradients), by ``FlopCounterMode``."""
    with evaluating(model), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops()


@dataclass
class FashionMNISTModelsTask(ImageClassificationData):
    """Registered backbones trained on Fashion-MNIST on one budget (see the module docstring)."""

    name = "fashion-mnist-models"
    title = "Fashion-MNIST: the papers' backbones on one training budget"
    row_label = "model"
    default_mixers = ("davit", "gcvit")
    default_steps = 4000
    default_lr = 2e-3

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        """Raise one ``ValueError`` naming every model name that is not registered, every option that overrides
        what the task fixes, and every model its options cannot build; then the registered models."""
        from attnzoo.models.registry import create_model, list_models

        problems = []
        for name, kwargs in options.items():
            fixed = sorted(set(kwargs) & set(FIXED))
            if fixed:
                problems.append(f"model {name!r}: options {fixed} are fixed by the task ({FIXED})")
                continue
            try:
                create_model(name, **FIXED, **kwargs)
            except KeyError:
                problems.append(f"unknown model {name!r}")
            except (TypeError, ValueError) as error:
                problems.append(f"model {name!r} with {dict(kwargs)}: {error}")
        if problems:
            raise ValueError("; ".join(problems) + f". Registered models: {', '.join(list_models())}")

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        """No per-model defaults: each model's own (sized for 28x28)."""
        return {}

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        from attnzoo.models.registry import create_model

        return create_model(mixer, **FIXED, **mixer_kwargs)

    def score(self, model: nn.Module) -> dict[str, float]:
        """Test accuracy, forward MFLOPs per image and scoring throughput (see the module docstring)."""
        images, labels = (t[:self.test_examples] for t in self._data[2:])
        device = next(model.parameters()).device
        start = time.perf_counter()
        accuracy = split_accuracy(model, images, labels)
        seconds = time.perf_counter() - start
        flops = forward_flops(model, images[:1].to(device))
        return {"test_accuracy": accuracy, "mflops": flops / 1e6, "infer_images_per_s": len(images) / seconds}

    def settings_markdown(self, train_config: TrainConfig) -> str:
        return ("- models: the registered backbones (`attnzoo.create_model`) with their defaults for 1-channel "
                "28x28 images and 10 classes; options in the JSON\n- mflops: forward FLOPs per image "
                "(torch.utils.flop_counter); infer images/s: the scoring pass (eval, batches of 500)\n"
                + self._training_line(train_config))

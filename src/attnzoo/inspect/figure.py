"""One attention picture per spatial mixer on the same Fashion-MNIST test image, from the models an
``attnzoo compare`` (or ``attnzoo eval fashion-mnist``) run trained: ``attnzoo inspect RUN_DIR``.

Every checkpoint folder under the run whose stored run settings say ``task = fashion-mnist`` is rebuilt (the
task's settings, the mixer and its options come from the checkpoint; its weights load strictly with
safetensors), run on test image ``image_index`` under :func:`~attnzoo.inspect.capture_attention`, and its blocks'
maps rolled out (:func:`~attnzoo.inspect.attention_rollout`); the picture is the rollout's mean over query rows
(the ViT mean-pools its tokens, so that is the attention behind its output) on the 7x7 token grid, drawn over the
image. A mixer without attention maps gets a panel saying why (:func:`~attnzoo.inspect.attention_map_support`).
Writes ``attention.png`` and ``attention.json`` (each mixer's heat values, or its reason) in ``out_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from attnzoo.inspect.capture import capture_attention
from attnzoo.inspect.rollout import attention_rollout, layer_attentions, token_heat
from attnzoo.train.checkpoint import latest_checkpoint, load_checkpoint

FIGURE = "attention.png"
DATA = "attention.json"
TASK = "fashion-mnist"


@dataclass(frozen=True)
class TrainedRun:
    """A trained Fashion-MNIST model found in a run folder: its mixer, checkpoint folder and run settings."""

    mixer: str
    checkpoints: Path
    settings: dict[str, Any]


def fashion_runs(root: str | Path) -> list[TrainedRun]:
    """Every checkpoint folder under ``root`` whose run settings are the Fashion-MNIST task's, sorted by mixer."""
    found = []
    for pointer in sorted(Path(root).rglob("latest.json")):
        latest = latest_checkpoint(pointer.parent)
        if latest is None:
            continue
        state = torch.load(latest["state"], map_location="cpu", weights_only=True)
        settings = state.get("settings") if isinstance(state, dict) else None
        if isinstance(settings, dict) and settings.get("task") == TASK:
            found.append(TrainedRun(str(settings["mixer"]), pointer.parent, settings))
    return sorted(found, key=lambda r: (r.mixer, str(r.checkpoints)))


def load_model(run: TrainedRun) -> tuple[Any, torch.nn.Module]:
    """The run's task (its settings) and ViT, rebuilt from its settings, with the checkpoint's weights, in eval
    mode."""
    from attnzoo.tasks.fashion_mnist import FashionMNISTTask

    names = {f.name for f in fields(FashionMNISTTask) if f.init and not f.name.startswith("_")}
    task = FashionMNISTTask(**{k: v for k, v in run.settings.items() if k in names})
    model = task.build_model(run.mixer, dict(run.settings.get("mixer_kwargs") or {}))
    load_checkpoint(run.checkpoints, model)
    return task, model.eval()


def mixer_heat(model: torch.nn.Module, image: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor | str:
    """The ``grid``-shaped mean-query rollout heat of ``model`` (a ViT on a ``grid`` of tokens, sequence mixers
    seeing it flattened row-major) on one standardised image, or why there is none."""
    with capture_attention(model) as captured, torch.no_grad():
        model(image[None])
    if not captured.maps:
        reasons = sorted(set(captured.without_maps.values()))
        return "no attention map: " + ("; ".join(reasons) if reasons else "no registered attention layer")
    try:
        attentions = layer_attentions(captured)
    except ValueError as error:
        return f"no full-grid map: {error}"
    return token_heat(attention_rollout(attentions), grid)[0]


def write_attention_figure(root: str | Path, out_dir: str | Path, image_index: int = 0) -> Path | None:
    """Draw ``attention.png`` (and ``attention.json``) in ``out_dir`` for every Fashion-MNIST model trained under
    ``root`` (module docstring); ``None`` when ``root`` holds none."""
    from attnzoo.data import FASHION_MNIST_CLASSES, load_fashion_mnist
    from attnzoo.inspect.plots import image_grid

    runs = fashion_runs(root)
    if not runs:
        return None
    raw, labels = load_fashion_mnist("test")
    if not (isinstance(image_index, int) and not isinstance(image_index, bool) and 0 <= image_index < len(raw)):
        raise ValueError(f"image_index={image_index!r}: expected a test image index in [0, {len(raw)})")
    heats: dict[str, torch.Tensor | str] = {}
    standardised = None
    for run in runs:
        task, model = load_model(run)
        if standardised is None:  # the test image as every model was scored on it (the same for every setting)
            task.prepare()
            standardised = task._data[2][image_index]
        heats[run.mixer] = mixer_heat(model, standardised, (task.grid, task.grid))
    label = FASHION_MNIST_CLASSES[int(labels[image_index])]
    out_dir = Path(out_dir)
    path = image_grid(raw[image_index].float(), heats, out_dir / FIGURE,
                      f"test image {image_index} ({label}): attention rollout, mean over queries")
    data = {"image_index": image_index, "label": label,
            "mixers": {m: (h if isinstance(h, str) else h.tolist()) for m, h in heats.items()}}
    (out_dir / DATA).write_text(json.dumps(data, indent=1) + "\n")
    return path

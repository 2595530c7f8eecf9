"""Heat-map plots of attention over images and over tokens (matplotlib, the optional ``[plot]`` extra, Agg backend).

Each function draws into a given ``matplotlib`` axes and returns it, so pictures compose into any figure;
:func:`image_grid` makes the one-picture-per-mixer figure of ``attnzoo inspect`` and the compare report.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.plots import pyplot


def _matrix(name: str, t: torch.Tensor, rank: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dim() != rank or t.numel() == 0:
        raise ValueError(f"{name} has shape {tuple(getattr(t, 'shape', ()))}; expected a non-empty {rank}-D tensor")
    return t.detach().to(torch.float64).cpu()


def upsample(heat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A ``(h, w)`` token heat bilinearly resized to an image's ``(H, W)`` (each token covers its patch)."""
    heat = _matrix("heat", heat, 2)
    return F.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def heat_over_image(ax: Any, image: torch.Tensor, heat: torch.Tensor, title: str | None = None,  # noqa: ANN401
                    alpha: float = 0.55) -> Any:  # noqa: ANN401
    """``image`` ``(H, W)`` in grey with the ``(h, w)`` token ``heat`` resized over it (``inferno``)."""
    image = _matrix("image", image, 2)
    ax.imshow(image.numpy(), cmap="gray")
    ax.imshow(upsample(heat, tuple(image.shape)).numpy(), cmap="inferno", alpha=alpha)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def token_matrix(ax: Any, weights: torch.Tensor, queries: Sequence[str], keys: Sequence[str] | None = None,  # noqa: ANN401
                 title: str | None = None) -> Any:  # noqa: ANN401
    """An ``(Nq, Nk)`` attention matrix with the query tokens down the side and the keys along the top."""
    weights = _matrix("weights", weights, 2)
    keys = list(queries) if keys is None else list(keys)
    if (len(queries), len(keys)) != tuple(weights.shape):
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected (len(queries), len(keys)) = "
                         f"({len(queries)}, {len(keys)})")
    ax.imshow(weights.numpy(), cmap="viridis", vmin=0)
    ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
    ax.set_yticks(range(len(queries)), list(queries), fontsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def token_strip(ax: Any, tokens: Sequence[str], values: torch.Tensor, title: str | None = None) -> Any:  # noqa: ANN401
    """One value per token (a rollout row, a heat) as a one-row heat map labelled with the tokens."""
    values = _matrix("values", values, 1)
    if len(tokens) != values.shape[0]:
        raise ValueError(f"values has {values.shape[0]} entries; expected one per token ({len(tokens)})")
    ax.imshow(values[None].numpy(), cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(len(tokens)), list(tokens), rotation=90, fontsize=7)
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def image_grid(image: torch.Tensor, heats: Mapping[str, torch.Tensor | str], path: str | Path,
               title: str | None = None, columns: int = 5) -> Path:
    """The image, then one panel per entry of ``heats``: its ``(h, w)`` heat over the image, or (a string) the
    reason it has none, written in the panel. Saved as a PNG at ``path``."""
    plt = pyplot()
    panels = 1 + len(heats)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.2 * rows), squeeze=False)
    flat = list(axes.flat)
    flat[0].imshow(_matrix("image", image, 2).numpy(), cmap="gray")
    flat[0].set_title("image", fontsize=8)
    flat[0].set_axis_off()
    for ax, (name, heat) in zip(flat[1:], heats.items()):
        if isinstance(heat, str):
            ax.text(0.5, 0.5, textwrap.fill(heat, 28), ha="center", va="center", fontsize=6, transform=ax.transAxes)
            ax.set_title(name, fontsize=8)
            ax.set_axis_off()
        else:
            heat_over_image(ax, image, heat, name)
    for ax in flat[panels:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.82 if rows == 1 else 0.9, wspace=0.1, hspace=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

